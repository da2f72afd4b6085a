#!/usr/bin/env bash
# Builds the OpenSSL the shipped binaries link, and prints where it is
# installed (OPENSSL_DIR for openssl-sys, which libssh2-sys follows).
#
# The source is the one openssl-src vendors (the version Cargo.lock pins, as
# the default `vendored-openssl` build uses), configured for what commit-back
# speaks and nothing else: a TLS 1.2/1.3 client (HTTPS to git, the API and
# LFS servers, post-quantum key exchange kept) and the algorithms libssh2
# offers an SSH server (AES, ECDH and X25519, Diffie-Hellman, RSA, ECDSA,
# Ed25519, SHA-1/2). Left out: protocols below TLS 1.2, DTLS
# and QUIC, certificate transparency, OCSP and its HTTP client, CMS, CMP,
# timestamps, SRP, engines and loadable modules, the config file a scratch
# image does not have, and ciphers and digests neither protocol negotiates
# here (ARIA, Camellia, SM2/3/4, GOST, DES, RC2/4, IDEA, SEED, CAST,
# Blowfish, Whirlpool, RIPEMD-160, MD4, DSA, binary curves, ML-DSA, SLH-DSA,
# LMS, scrypt, Argon2). libssh2 turns off its own 3des-cbc, ssh-dss and
# hmac-ripemd160 when OpenSSL lacks them (its openssl.h).
#
# One code path removed: OpenSSL's AVX-512 AES-GCM (two routines of 337 KB
# each, unrolled). AES-GCM still runs on AES-NI with AVX (aesni-gcm-x86_64,
# several GB/s per core): far beyond any network a push goes through. Done
# as OpenSSL does for an assembler too old for AVX-512: its generator emits
# stubs that report the path unavailable.
#
# C without unwind tables (-fno-asynchronous-unwind-tables): the binary is
# panic=abort and nothing unwinds through C; -Os as the rest of the binary.
# Its default certificate places are /etc/ssl/cert.pem and /etc/ssl/certs
# (Debian's hashed directory; the image sets SSL_CERT_FILE), not a path of
# the build machine. Built once per configuration (a stamp of this script and the source).
# Usage: scripts/build-openssl.sh <rust target>   (x86_64- or aarch64-unknown-linux-gnu)
set -euo pipefail
self=$(realpath "$0")
cd "$(dirname "$self")/.."
target=${1:?usage: scripts/build-openssl.sh <rust target>}
case $target in
  x86_64-unknown-linux-gnu)
    [ "$(uname -m)" = x86_64 ] || { echo "build-openssl.sh: $target is built natively on an x86_64 host" >&2; exit 2; }
    os=linux-x86_64 cc=gcc ar=ar ranlib=ranlib ;;
  aarch64-unknown-linux-gnu) os=linux-aarch64 cc=aarch64-linux-gnu-gcc ar=aarch64-linux-gnu-ar ranlib=aarch64-linux-gnu-ranlib ;;
  *) echo "build-openssl.sh: no configuration for $target" >&2; exit 2 ;;
esac

cargo fetch -q --locked
metadata=$(cargo metadata -q --format-version 1 --locked)
manifest=$(grep -o '"manifest_path":"[^"]*/openssl-src-[^"/]*/Cargo.toml"' <<<"$metadata" | head -1 | cut -d'"' -f4 || true)
[ -n "$manifest" ] || { echo "build-openssl.sh: cargo metadata names no openssl-src package (Cargo.lock)" >&2; exit 1; }
src=$(dirname "$manifest")/openssl
[ -f "$src/Configure" ] || { echo "build-openssl.sh: no OpenSSL source at $src" >&2; exit 1; }

options=(
  no-shared no-module no-dso no-engine no-tests no-apps no-docs
  no-comp no-zlib no-legacy no-async no-autoload-config no-ui-console no-filenames
  no-ssl3 no-tls1 no-tls1_1 no-dtls no-dgram no-quic no-weak-ssl-ciphers
  no-ssl-trace no-nextprotoneg no-srtp no-srp no-ct no-ocsp no-http no-cms no-cmp no-ts no-rfc3779
  no-multiblock
  no-aria no-bf no-blake2 no-camellia no-cast no-cmac no-des no-dsa no-ec2m no-gost no-idea
  no-lms no-md4 no-ml-dsa no-slh-dsa no-ocb no-rc2 no-rc4 no-rmd160 no-scrypt no-seed
  no-siphash no-siv no-sm2 no-sm3 no-sm4 no-whirlpool
)
cflags=(-Os -ffunction-sections -fdata-sections -fPIC -fno-asynchronous-unwind-tables -fno-unwind-tables)

# The stamp names the directory: a new configuration is a new OPENSSL_DIR,
# which makes cargo rebuild openssl-sys and libssh2-sys against it (they
# would keep the old library if only the files behind the same path changed).
stamp=$( { cat "$self"; echo "$src"; } | sha256sum | cut -c1-16)
out=target/openssl/$target-$stamp
if [ -f "$out/stamp" ] && [ -f "$out/install/lib/libcrypto.a" ]; then
  echo "$PWD/$out/install"
  exit 0
fi
rm -rf "$out"
mkdir -p "$out"
cp -R "$src" "$out/src"
gen=$out/src/crypto/modes/asm/aes-gcm-avx512.pl
grep -q '^if (\$avx512vaes>0) { #<<<$' "$gen" || { echo "build-openssl.sh: $gen changed; look again at the AVX-512 stub" >&2; exit 1; }
sed -i 's/^if (\$avx512vaes>0) { #<<<$/$avx512vaes = 0; # commit-back: the stubs, not the 674 KB path\n&/' "$gen"
(
  cd "$out/src"
  # Configure reads these from the environment too: only the options above count.
  unset CFLAGS CPPFLAGS LDFLAGS CROSS_COMPILE
  CC=$cc AR=$ar RANLIB=$ranlib perl ./Configure "$os" --prefix="$PWD/../install" --openssldir=/etc/ssl --libdir=lib \
    "${options[@]}" "${cflags[@]}" >../configure.log 2>&1 ||
    { cat ../configure.log >&2; exit 1; }
  make -j"$(nproc)" build_libs >../make.log 2>&1 || { tail -50 ../make.log >&2; exit 1; }
  make install_dev >>../make.log 2>&1 || { tail -50 ../make.log >&2; exit 1; }
)
rm -rf "$out/src"
echo "$stamp" >"$out/stamp"
echo "$PWD/$out/install"
