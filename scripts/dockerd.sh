#!/usr/bin/env bash
# Starts a private Docker Engine (Debian's docker.io) without systemd, for the
# container tests; prints `export DOCKER_HOST=…` for the caller to eval.
# Usage: eval "$(scripts/dockerd.sh start)"; …; scripts/dockerd.sh stop
set -euo pipefail
dir=${COMMIT_BACK_DOCKER_DIR:-/tmp/commit-back-dockerd}
sock="$dir/docker.sock"
case "${1:-start}" in
  start)
    if ! command -v dockerd >/dev/null; then
      export DEBIAN_FRONTEND=noninteractive
      { apt-get update -qq && apt-get install -y -qq --no-install-recommends docker.io; } >&2
    fi
    mkdir -p "$dir"
    if [ -S "$sock" ] && DOCKER_HOST="unix://$sock" docker version >/dev/null 2>&1; then
      echo "export DOCKER_HOST=unix://$sock"
      exit 0
    fi
    nohup dockerd --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/dockerd.pid" \
      -H "unix://$sock" --iptables=false --ip6tables=false --bridge=none \
      >"$dir/dockerd.log" 2>&1 &
    for _ in $(seq 1 100); do
      DOCKER_HOST="unix://$sock" docker version >/dev/null 2>&1 && break
      sleep 0.2
    done
    DOCKER_HOST="unix://$sock" docker version >/dev/null 2>&1 || { cat "$dir/dockerd.log" >&2; echo "dockerd did not start" >&2; exit 1; }
    echo "export DOCKER_HOST=unix://$sock"
    ;;
  stop)
    [ -f "$dir/dockerd.pid" ] && kill "$(cat "$dir/dockerd.pid")" 2>/dev/null || true
    ;;
esac
