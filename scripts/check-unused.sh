#!/usr/bin/env bash
# Dead weight the compiler does not see: a `pub fn` of the crate that nothing
# calls or names as a value (rustc's dead-code lint stops at `pub` in a
# library), and a dependency in Cargo.toml that no source file names. Uses
# are counted only in code forms (`name(`, `::name`, `.name`, `name` passed
# as an argument), outside comments and the definition itself. Exits 1
# naming each.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
sources=(src tests testkit/src)
while read -r name; do
  uses=$(grep -rhE "(\b${name}\s*\(|::${name}\b|\.${name}\b|[(,]\s*${name}\s*[),])" \
      "${sources[@]}" --include='*.rs' |
    grep -vE "^\s*//|\bfn ${name}\b" | wc -l || true)
  if [ "$uses" -eq 0 ]; then
    echo "unused function: $name ($(grep -rlE "fn ${name}\b" src | head -1))"
    status=1
  fi
done < <(grep -rhoE '^\s*pub(\([a-z]+\))? (const )?fn [a-z_0-9]+' src --include='*.rs' |
  sed -E 's/.*fn ([a-z_0-9]+)/\1/' | sort -u)
# [dependencies] of the pipe itself.
while read -r dep; do
  crate=${dep//-/_}
  if ! grep -rqE "\b${crate}::|use ${crate}\b|extern crate ${crate}\b" src --include='*.rs'; then
    echo "unused dependency: $dep"
    status=1
  fi
done < <(awk '/^\[dependencies\]/{on=1; next} /^\[/{on=0} on && /^[a-z0-9_-]+ *=/{print $1}' Cargo.toml)
exit $status
