#!/usr/bin/env bash
# Image and binary size, and start-up: wall time from `docker run` to exit for
# a run that finds nothing to commit, against the bare static binary doing the
# same. Median of N runs (default 10). Needs the image (scripts/build-image.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
image=${1:-commit-back:test}
runs=${RUNS:-10}
bin=$(pwd)/target/x86_64-unknown-linux-gnu/release/commit-back

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git init -q -b main "$work/clone"
git -C "$work/clone" -c user.name=a -c user.email=a@b commit -q --allow-empty -m init
envs=(-e BITBUCKET_BRANCH=main -e BITBUCKET_REPO_FULL_NAME=ws/repo -e BITBUCKET_ACCESS_TOKEN=x-bench-token -e NO_COLOR=1)

# One checked run first: a failing docker run must not be timed as fast.
docker run --rm -v "$work/clone:/opt/atlassian/pipelines/agent/build" -w /opt/atlassian/pipelines/agent/build "${envs[@]}" "$image" 2>/dev/null | grep -q '"status": "nothing_to_commit"'

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
time_ms() { local s e; s=$(date +%s%N); "$@" >/dev/null 2>&1 || true; e=$(date +%s%N); echo $(( (e - s) / 1000000 )); }

bare=$(for _ in $(seq "$runs"); do (cd "$work/clone" && time_ms env -i BITBUCKET_BRANCH=main BITBUCKET_REPO_FULL_NAME=ws/repo BITBUCKET_ACCESS_TOKEN=x-bench-token NO_COLOR=1 "$bin"); done | median)
container=$(for _ in $(seq "$runs"); do time_ms docker run --rm -v "$work/clone:/opt/atlassian/pipelines/agent/build" -w /opt/atlassian/pipelines/agent/build "${envs[@]}" "$image"; done | median)

echo "| measure | value |"
echo "|---|---:|"
echo "| binary size | $(stat -c %s "$bin") bytes |"
echo "| image size (uncompressed) | $(docker image inspect -f '{{.Size}}' "$image") bytes |"
echo "| bare binary, nothing_to_commit (median of $runs) | ${bare} ms |"
echo "| docker run to exit, nothing_to_commit (median of $runs) | ${container} ms |"
