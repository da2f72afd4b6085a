#!/usr/bin/env bash
# Builds the fully static x86_64 binary, proves it is static, and builds the
# scratch image from it without pulling anything (CI's path; the Dockerfile's
# multi-stage build is the publisher's path). Prints figures.
# Usage: scripts/build-image.sh [image-tag]   (needs DOCKER_HOST or a running engine)
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
DOCKER_BUILDKIT=0 docker build -q -t "$tag" "$ctx" >/dev/null

echo "binary: $(stat -c %s "$bin") bytes ($bin)"
echo "image:  $(docker image inspect -f '{{.Size}}' "$tag") bytes ($tag)"
