#!/usr/bin/env bash
# Where the binary's bytes go, by crate (cargo bloat's --crates, without
# installing it): builds the release binary with its symbols
# (scripts/build-static.sh with profile release-symbols: the shipped
# build, not stripped), then sums the
# sizes `nm` gives each function and datum by the crate its demangled path
# starts with; C libraries (OpenSSL, libgit2, libssh2, zlib, glibc) have no
# crate path and are grouped by symbol prefix where one is telling.
# Usage: scripts/size-by-crate.sh [N rows]
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-20}
bin=$(bash scripts/build-static.sh x86_64-unknown-linux-gnu release-symbols)
echo "unstripped: $(stat -c %s "$bin") bytes; text+data by origin:"
nm -S --size-sort -C "$bin" | python3 -c '
import sys, re, collections
sizes = collections.Counter()
total = 0
for line in sys.stdin:
    parts = line.split(None, 3)
    if len(parts) < 4:
        continue
    size = int(parts[1], 16)
    name = parts[3].strip()
    total += size
    m = re.match(r"^(?:<)?([A-Za-z_][A-Za-z0-9_]*)::", name)
    if m:
        key = m.group(1)
    elif name.startswith(("ecp_nistz256", "k25519", "nid_objs", "ssl3_", "param_group", "curve448", "x448", "tls1", "dtls", "ossl_", "OPENSSL_", "EVP_", "SSL_", "ssl", "tls", "BN_", "EC_", "RSA_", "X509", "ASN1_", "CRYPTO_", "PEM_", "aesni_", "sha", "bn_", "ecp_", "x25519", "ED25519", "CMS_", "PKCS", "OBJ_", "d2i_", "i2d_", "ERR_", "BIO_", "DH_", "DSA_", "ECDSA_", "ENGINE_", "OSSL_", "v3_", "chacha", "poly1305", "gcm", "aes_")):
        key = "[C] OpenSSL"
    elif name.startswith(("git_", "git__", "llhttp", "_pcre2", "pcre2", "compile_regex", "parse_regex", "match.constprop")):
        key = "[C] libgit2 (with its bundled PCRE2 and llhttp)"
    elif name.startswith("libssh2_") or name.startswith("_libssh2"):
        key = "[C] libssh2"
    elif name.startswith(("deflate", "inflate", "crc32", "adler32", "zlib", "_tr_", "z_")):
        key = "[C] zlib"
    elif name.startswith(("__", "_IO", "_dl", "_nl", "translit")):
        key = "[C] glibc (static)"
    else:
        key = "[other: unnamed C statics and symbols]"
    sizes[key] += size
for key, size in sizes.most_common(int(sys.argv[1])):
    print(f"{size:>10}  {100*size/total:5.1f}%  {key}")
print(f"{total:>10}  100.0%  (all symbols)")
' "$rows"
