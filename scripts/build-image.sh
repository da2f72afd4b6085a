#!/usr/bin/env bash
# Builds the static x86_64 binary and the static aarch64 one
# (scripts/build-static.sh: how, and what makes them small) and a scratch
# image from each without pulling anything: <tag> (linux/amd64) and
# <tag>-arm64 (linux/arm64). CI's path and the release pipeline's
# (bitbucket-pipelines.yml publishes both under one tag); the Dockerfile's
# multi-stage build makes an amd64-only image. Prints the sizes, binary and
# image, uncompressed and compressed as users pull it.
# Usage: scripts/build-image.sh [image-tag]   (needs DOCKER_HOST or a running engine)
# COMMIT_BACK_SKIP_ARM64=1 builds amd64 only.
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-commit-back:test}
bin=$(bash scripts/build-static.sh x86_64-unknown-linux-gnu)

ca=/etc/ssl/certs/ca-certificates.crt
[ -f "$ca" ] || { apt-get install -y -qq --no-install-recommends ca-certificates >/dev/null; }
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$bin" "$ctx/commit-back"
cp "$ca" "$ctx/ca-certificates.crt"
cp pipe.yml "$ctx/pipe.yml"
cp docker/Dockerfile.prebuilt "$ctx/Dockerfile"
DOCKER_BUILDKIT=0 docker build -q --no-cache --platform linux/amd64 -t "$tag" "$ctx" >/dev/null
[ "$(docker image inspect -f '{{.Architecture}}' "$tag")" = amd64 ] || { echo "$tag is not an amd64 image" >&2; exit 1; }

# The layer users pull: `docker save | gzip -9`.
compressed() { docker save "$1" | gzip -9 | wc -c; }
echo "amd64 binary: $(stat -c %s "$bin") bytes ($bin)"
echo "amd64 image:  $(docker image inspect -f '{{.Size}}' "$tag") bytes uncompressed, $(compressed "$tag") compressed ($tag)"

[ "${COMMIT_BACK_SKIP_ARM64:-}" = 1 ] && exit 0
arm_bin=$(bash scripts/build-static.sh aarch64-unknown-linux-gnu)
cp "$arm_bin" "$ctx/commit-back"
# FROM scratch and COPY only: the legacy builder makes it for arm64 without
# emulation (--no-cache: the amd64 layers just built would be reused otherwise).
DOCKER_BUILDKIT=0 docker build -q --no-cache --platform linux/arm64 -t "$tag-arm64" "$ctx" >/dev/null
[ "$(docker image inspect -f '{{.Architecture}}' "$tag-arm64")" = arm64 ] || { echo "$tag-arm64 is not an arm64 image" >&2; exit 1; }
echo "arm64 binary: $(stat -c %s "$arm_bin") bytes ($arm_bin)"
echo "arm64 image:  $(docker image inspect -f '{{.Size}}' "$tag-arm64") bytes uncompressed, $(compressed "$tag-arm64") compressed ($tag-arm64)"
