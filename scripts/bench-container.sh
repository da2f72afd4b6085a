#!/usr/bin/env bash
# Image and binary size (uncompressed, and compressed as users pull it:
# `docker save | gzip -9`), and start-up: wall time from `docker run` to exit
# for a run that finds nothing to commit, against the bare static binary doing
# the same; for linux/amd64 and linux/arm64 (the arm64 binary under
# qemu-aarch64-static: informative only; its `docker run` needs the kernel's
# binfmt_misc to know qemu, which a sandbox may not offer). Median of N runs
# (default 10). Needs the images (scripts/build-image.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
image=${1:-commit-back:test}
runs=${RUNS:-10}
bin=$(pwd)/target/x86_64-unknown-linux-gnu/release/commit-back
arm_bin=$(pwd)/target/arm64/aarch64-unknown-linux-gnu/release/commit-back
qemu=$(command -v qemu-aarch64-static || true)

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

compressed() { docker save "$1" | gzip -9 | wc -c; }
arm_bare="not built"; arm_container="not built"; arm_size="not built"; arm_image="not built"; arm_gz="not built"
if [ -x "$arm_bin" ] && docker image inspect "$image-arm64" >/dev/null 2>&1; then
  arm_size="$(stat -c %s "$arm_bin") bytes"
  arm_image="$(docker image inspect -f '{{.Size}}' "$image-arm64") bytes"
  arm_gz="$(compressed "$image-arm64") bytes"
  [ -n "$qemu" ] && arm_bare="$(for _ in $(seq "$runs"); do (cd "$work/clone" && time_ms env -i BITBUCKET_BRANCH=main BITBUCKET_REPO_FULL_NAME=ws/repo BITBUCKET_ACCESS_TOKEN=x-bench-token NO_COLOR=1 "$qemu" "$arm_bin"); done | median) ms (qemu)"
  arm_out=$(docker run --rm -v "$work/clone:/opt/atlassian/pipelines/agent/build" -w /opt/atlassian/pipelines/agent/build "${envs[@]}" "$image-arm64" 2>&1 || true)
  if grep -q '"status": "nothing_to_commit"' <<<"$arm_out"; then
    arm_container="$(for _ in $(seq "$runs"); do time_ms docker run --rm -v "$work/clone:/opt/atlassian/pipelines/agent/build" -w /opt/atlassian/pipelines/agent/build "${envs[@]}" "$image-arm64"; done | median) ms (emulated)"
  else
    arm_container="did not run here ($(grep -o 'exec format error' <<<"$arm_out" | head -1 || true); an emulated run needs qemu registered in binfmt_misc)"
  fi
fi

echo "| measure | linux/amd64 | linux/arm64 |"
echo "|---|---:|---:|"
echo "| binary size | $(stat -c %s "$bin") bytes | $arm_size |"
echo "| image size, uncompressed | $(docker image inspect -f '{{.Size}}' "$image") bytes | $arm_image |"
echo "| image size, compressed (docker save \| gzip -9) | $(compressed "$image") bytes | $arm_gz |"
echo "| bare binary, nothing_to_commit (median of $runs) | ${bare} ms | $arm_bare |"
echo "| docker run to exit, nothing_to_commit (median of $runs) | ${container} ms | $arm_container |"
