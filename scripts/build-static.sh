#!/usr/bin/env bash
# Builds the binary that ships, for one architecture, checks that it is
# static, and prints its path. scripts/build-image.sh puts it in the images;
# scripts/size-by-crate.sh builds it with its symbols (profile release-symbols).
#
# What makes it small, and what each costs (BENCHMARKS.md "Image per architecture"):
# - OpenSSL built for what commit-back speaks (scripts/build-openssl.sh), in
#   place of openssl-src's everything-on build: openssl-sys and libssh2-sys
#   take it through <TARGET>_OPENSSL_DIR and OPENSSL_NO_VENDOR.
# - crt-static: a static PIE, loaded at a random address like the rest of the
#   process, with its run-time relocations packed (-z pack-relative-relocs,
#   DT_RELR, which binutils 2.40 writes and glibc 2.36's static start-up
#   applies): a 7 KB bitmap instead of a 756 KB table of one entry per
#   pointer in OpenSSL's and Rust's tables.
# - No unwind tables for Rust (force-unwind-tables=no; panic=abort already)
#   or C (-fno-asynchronous-unwind-tables): nothing unwinds, and a panic still
#   prints its message; only a RUST_BACKTRACE backtrace loses frames.
# crt-static with an explicit --target keeps static linking away from build
# scripts and proc macros (engineering notes).
#
# aarch64: rustup cannot fetch another target's standard library here, so it
# is built by Debian's own compiler (rustc-web/cargo-web, /usr/bin/rustc and
# /usr/bin/cargo) with its arm64 standard library (libstd-rust-web-dev:arm64,
# through multiarch) and Debian's cross gcc for the C (OpenSSL, libgit2,
# libssh2, zlib) and the link, in a target directory of its own that keeps
# the two compilers' artifacts apart.
# Usage: scripts/build-static.sh <x86_64|aarch64>-unknown-linux-gnu [cargo profile]
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: scripts/build-static.sh <rust target> [profile]}
profile=${2:-release}
command -v file >/dev/null || { echo "build-static.sh: needs file(1) to check the result (apt-get install file)" >&2; exit 1; }

ssl=$(bash scripts/build-openssl.sh "$target")
prefix=$(echo "$target" | tr 'a-z-' 'A-Z_')
export "${prefix}_OPENSSL_NO_VENDOR=1" "${prefix}_OPENSSL_DIR=$ssl" "${prefix}_OPENSSL_STATIC=1"
export "CFLAGS_${target//-/_}=-fno-asynchronous-unwind-tables -fno-unwind-tables"
export RUSTFLAGS='-C target-feature=+crt-static -C link-arg=-Wl,-z,pack-relative-relocs -C force-unwind-tables=no'

case $target in
  x86_64-unknown-linux-gnu)
    cargo build -q --profile "$profile" --locked --target "$target" --bin commit-back
    bin=target/$target/$profile/commit-back
    arch='x86-64' linked='static-pie linked' ;;
  aarch64-unknown-linux-gnu)
    { [ -d /usr/lib/rustlib/$target ] && [ -x /usr/bin/cargo ] && [ -x /usr/bin/rustc ]; } ||
      { echo "no Debian compiler with the $target standard library: install rustc-web cargo-web libstd-rust-web-dev:arm64 (scripts/test.sh does)" >&2; exit 1; }
    RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc \
      CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
      CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
      AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar \
      /usr/bin/cargo build -q --profile "$profile" --locked --target "$target" --bin commit-back --target-dir target/arm64
    bin=target/arm64/$target/$profile/commit-back
    # rustc's aarch64-unknown-linux-gnu target has no static PIE: crt-static
    # links a static executable at a fixed address (no relocations to pack).
    arch='ARM aarch64' linked='statically linked' ;;
  *) echo "build-static.sh: no build for $target" >&2; exit 2 ;;
esac

description=$(file "$bin")
echo "$description" >&2
case $description in
  *"$arch"*"$linked"*) ;;
  *) echo "$bin is not a $arch executable, $linked" >&2; exit 1 ;;
esac
if [ "$target" = x86_64-unknown-linux-gnu ] && ldd "$bin" 2>&1 | grep -q '=>\|ld-linux'; then
  echo "ldd finds a dynamic loader in $bin" >&2; exit 1
fi
echo "$bin"
