#!/usr/bin/env bash
# The test command (README "Set-up commands"): installs what the tests need on
# a fresh Debian machine, then checks formatting and lints and runs every test
# against real servers (git http-backend, OpenSSH sshd) on 127.0.0.1, and
# holds staging to the git CLI (with git-lfs) in twin checkouts.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v git >/dev/null || need+=(git)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh-keygen >/dev/null || need+=(openssh-client)
command -v file >/dev/null || need+=(file)
command -v git-lfs >/dev/null || need+=(git-lfs)   # the staging oracle runs the real LFS filter
command -v openssl >/dev/null || need+=(openssl)   # TlsFront makes its certificate
[ -f /etc/ssl/certs/ca-certificates.crt ] || need+=(ca-certificates)
command -v python3 >/dev/null || need+=(python3)  # giftless, the real LFS server
command -v gpg >/dev/null || need+=(gnupg)      # verifies OpenPGP-signed commits (tests/e2e/signing.rs)
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
# linux/arm64: Debian's compiler with its arm64 standard library (multiarch),
# the cross gcc and static glibc, and qemu to run the result (tests/e2e/arm64.rs).
arm64=()
{ [ -d /usr/lib/rustlib/aarch64-unknown-linux-gnu ] && [ -x /usr/bin/cargo ] && [ -x /usr/bin/rustc ]; } ||
  arm64+=(rustc-web cargo-web libstd-rust-web-dev:arm64)
command -v aarch64-linux-gnu-gcc >/dev/null || arm64+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
command -v qemu-aarch64-static >/dev/null || arm64+=(qemu-user-static)
if [ ${#need[@]} -gt 0 ] || [ ${#arm64[@]} -gt 0 ]; then
  echo "Installing test dependencies: ${need[*]} ${arm64[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  export DEBIAN_FRONTEND=noninteractive
  [ ${#arm64[@]} -gt 0 ] && $sudo_cmd dpkg --add-architecture arm64
  $sudo_cmd apt-get update -qq
  [ ${#need[@]} -gt 0 ] && $sudo_cmd apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # Apart, and never removing anything (rustc-web conflicts with Debian's rustc/cargo).
  [ ${#arm64[@]} -gt 0 ] && $sudo_cmd apt-get install -y -qq --no-remove --no-install-recommends "${arm64[@]}" >/dev/null
fi

# giftless, a real Git LFS server (tests/e2e/lfs.rs), from PyPI into a venv.
# Its wheel declares no dependencies: they are pinned here, as upstream's
# requirements/main.txt for 0.6.2 has them (without the cloud backends).
venv=target/giftless-venv
if [ ! -x "$venv/bin/waitress-serve" ]; then
  echo "Installing giftless into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check giftless==0.6.2 waitress==3.0.2 \
    figcan==0.0.4 flask==2.3.3 flask-marshmallow==0.15.0 marshmallow==3.21.1 \
    pyyaml==6.0.1 pyjwt==2.8.0 webargs==8.4.0 typing-extensions==4.10.0 \
    python-dotenv==1.0.1 python-dateutil==2.9.0.post0 flask-classful==0.16.0 \
    werkzeug==3.0.3 cachetools==5.3.3
fi

cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
bash scripts/check-unused.sh
python3 scripts/module-cycles.py

# The container tests need a Docker Engine (Debian's docker.io, started here
# without systemd) and the static binary in a scratch image. Root installs and
# starts the engine; otherwise an engine already reachable is used.
if [ "$(id -u)" -eq 0 ] || docker version >/dev/null 2>&1; then
  if ! docker version >/dev/null 2>&1; then
    eval "$(bash scripts/dockerd.sh start)"
  fi
  bash scripts/build-image.sh commit-back:test
  export COMMIT_BACK_IMAGE=commit-back:test
  export COMMIT_BACK_STATIC_BIN="$PWD/target/x86_64-unknown-linux-gnu/release/commit-back"
  [ "${COMMIT_BACK_SKIP_ARM64:-}" = 1 ] ||
    export COMMIT_BACK_ARM64_BIN="$PWD/target/arm64/aarch64-unknown-linux-gnu/release/commit-back"
else
  echo "No Docker Engine and not root: the container tests will be skipped."
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line over all test binaries (cargo prints one per binary).
passed=$(grep -Eo '[0-9]+ passed' "$log" | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' "$log" | awk '{s+=$1} END {print s+0}')
echo "tests: $passed passed, $failed failed"
exit "$status"
