#!/usr/bin/env bash
# The layering of docs/architecture.md, checked from the sources: includes
# point down the table only (runtime/ has neither torch nor CAF, models/ has
# no CAF, nothing includes a folder above it), and no source or document
# cites design notes outside the repository; no two file pairs of one
# folder include each other (a pair is NAME.hpp with NAME.cpp).
# usage: layering_test.sh <source dir>
set -uo pipefail
src=$1
cd "$src" || exit 1
failures=0
# forbid <folder> <what> <regex>: no #include in <folder> matches <regex>.
forbid() {
  local hits
  hits=$(grep -rnE "^[[:space:]]*#[[:space:]]*include[[:space:]]*[<\"]($3)" "$1" --include='*.hpp' --include='*.cpp' --include='*.inc' 2>/dev/null)
  if [[ -n $hits ]]; then
    echo "FAIL - $1/ includes $2:"; echo "$hits" | sed 's/^/  /'; failures=$((failures + 1))
  else
    echo "ok   - $1/ does not include $2"
  fi
}
forbid runtime "torch" "torch/|ATen/|c10/"
forbid runtime "CAF" "caf/"
forbid runtime "a folder above it" "models/|actors/|cli/"
forbid models "CAF" "caf/"
forbid models "a folder above it" "actors/|cli/"
forbid actors "torch (only models/ may)" "torch/|ATen/|c10/"
forbid actors "the command" "cli/"
forbid schemas "anything of the project" "runtime/|models/|actors/|cli/"
hits=$(grep -rnE "DESIGN\.md|STYLE\.md|\.\./shared" runtime models actors cli schemas docs scenarios README.md CMakeLists.txt \
         --include='*.hpp' --include='*.cpp' --include='*.capnp' --include='*.md' --include='*.yaml' --include='*.txt' 2>/dev/null)
if [[ -n $hits ]]; then
  echo "FAIL - sources cite design notes outside the repository:"; echo "$hits" | sed 's/^/  /'; failures=$((failures + 1))
else
  echo "ok   - no source or document cites notes outside the repository"
fi
# circles <folder>: pairs a, b where a's files include b.hpp and b's include a.hpp.
circles() {
  local found="" a b
  for a in $(ls "$1"/*.hpp "$1"/*.cpp 2>/dev/null | sed -E 's/\.(hpp|cpp)$//' | sort -u); do
    for b in $(grep -hoE "^[[:space:]]*#[[:space:]]*include[[:space:]]*\"$1/[a-z_]+\.hpp\"" "$a".hpp "$a".cpp 2>/dev/null \
               | sed -E "s/.*\"($1\/[a-z_]+)\.hpp\"/\1/" | sort -u); do
      [[ $b == "$a" || $b < $a ]] && continue
      if grep -qE "^[[:space:]]*#[[:space:]]*include[[:space:]]*\"$a\.hpp\"" "$b".hpp "$b".cpp 2>/dev/null; then
        found+="  $a <-> $b"$'\n'
      fi
    done
  done
  if [[ -n $found ]]; then
    echo "FAIL - $1/ has file pairs that include each other:"; printf '%s' "$found"; failures=$((failures + 1))
  else
    echo "ok   - no two file pairs of $1/ include each other"
  fi
}
for d in runtime models actors cli; do circles "$d"; done
[[ $failures -eq 0 ]]
