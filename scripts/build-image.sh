#!/usr/bin/env bash
# Builds the fully static x86_64 binary and the static aarch64 one, proves
# each is static, and builds a scratch image from each without pulling
# anything: <tag> (linux/amd64) and <tag>-arm64 (linux/arm64). CI's path and
# the release pipeline's (bitbucket-pipelines.yml publishes both under one
# tag); the Dockerfile's multi-stage build makes an amd64-only image. Prints figures.
# Usage: scripts/build-image.sh [image-tag]   (needs DOCKER_HOST or a running engine)
#
# arm64: rustup cannot fetch another target's standard library here, so the
# aarch64 binary is built by Debian's own compiler (rustc-web/cargo-web 1.96,
# /usr/bin/rustc and /usr/bin/cargo) with its arm64 standard library
# (libstd-rust-web-dev:arm64, through multiarch) and Debian's cross gcc for
# the vendored C (OpenSSL, libgit2, libssh2, zlib) and the link; its own
# target directory keeps the two compilers' artifacts apart.
# COMMIT_BACK_SKIP_ARM64=1 builds amd64 only.
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-commit-back:test}
target=x86_64-unknown-linux-gnu
bin=target/$target/release/commit-back

# crt-static with an explicit --target keeps static linking away from build
# scripts and proc macros (engineering notes).
RUSTFLAGS='-C target-feature=+crt-static' cargo build -q --release --locked --target "$target" --bin commit-back

file "$bin" | tee /dev/stderr | grep -q 'static' || { echo "not statically linked" >&2; exit 1; }
if ldd "$bin" 2>&1 | grep -q '=>\|ld-linux'; then echo "ldd finds a dynamic loader" >&2; exit 1; fi

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
arm_target=aarch64-unknown-linux-gnu
arm_dir=target/arm64
arm_bin=$arm_dir/$arm_target/release/commit-back
{ [ -d /usr/lib/rustlib/$arm_target ] && [ -x /usr/bin/cargo ] && [ -x /usr/bin/rustc ]; } ||
  { echo "no Debian compiler with the $arm_target standard library: install rustc-web cargo-web libstd-rust-web-dev:arm64 (scripts/test.sh does)" >&2; exit 1; }
RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc \
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
  CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
  AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar \
  RUSTFLAGS='-C target-feature=+crt-static' \
  /usr/bin/cargo build -q --release --locked --target "$arm_target" --bin commit-back --target-dir "$arm_dir"
file "$arm_bin" | tee /dev/stderr | grep -q 'ARM aarch64.*static' || { echo "not a static aarch64 binary" >&2; exit 1; }
cp "$arm_bin" "$ctx/commit-back"
# FROM scratch and COPY only: the legacy builder makes it for arm64 without
# emulation (--no-cache: the amd64 layers just built would be reused otherwise).
DOCKER_BUILDKIT=0 docker build -q --no-cache --platform linux/arm64 -t "$tag-arm64" "$ctx" >/dev/null
[ "$(docker image inspect -f '{{.Architecture}}' "$tag-arm64")" = arm64 ] || { echo "$tag-arm64 is not an arm64 image" >&2; exit 1; }
echo "arm64 binary: $(stat -c %s "$arm_bin") bytes ($arm_bin)"
echo "arm64 image:  $(docker image inspect -f '{{.Size}}' "$tag-arm64") bytes uncompressed, $(compressed "$tag-arm64") compressed ($tag-arm64)"
