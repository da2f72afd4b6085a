#!/usr/bin/env bash
# Dead weight the compiler does not see: a `pub fn` of the crate that nothing
# calls (rustc's dead-code lint stops at `pub` in a library), and a
# dependency in Cargo.toml that no source file names. Exits 1 naming each.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
sources=(src tests testkit/src)
while read -r name; do
  uses=$(grep -rhoE "\b${name}\b" "${sources[@]}" --include='*.rs' | wc -l)
  if [ "$uses" -le 1 ]; then
    echo "unused function: $name ($(grep -rlE "fn ${name}\b" src | head -1))"
    status=1
  fi
done < <(grep -rhoE '^\s*pub(\([a-z]+\))? (const )?fn [a-z_0-9]+' src --include='*.rs' \
  | sed -E 's/.*fn ([a-z_0-9]+)/\1/' | sort -u)
# [dependencies] of the pipe itself; a crate used only through another's
# features is named in the comment above it (`# feature of …`).
awk '/^\[dependencies\]/{on=1; next} /^\[/{on=0} on && /^[a-z0-9_-]+ *=/{print $1}' Cargo.toml |
while read -r dep; do
  crate=${dep//-/_}
  if ! grep -rqE "\b${crate}::|use ${crate}\b|extern crate ${crate}\b" src --include='*.rs'; then
    if ! grep -B3 -E "^${dep} *=" Cargo.toml | grep -q "# feature of"; then
      echo "unused dependency: $dep"
      exit 1
    fi
  fi
done || status=1
exit $status
