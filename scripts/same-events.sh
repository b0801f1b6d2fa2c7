#!/usr/bin/env bash
# Runs scenarios with two fedsp binaries and checks that their event logs
# are the same, byte for byte, less the wall-clock fields (wall_ms,
# wall_elapsed_s, wall_seconds, ...): how a refactor shows it changed no
# behaviour (issue 14). Scenarios on the real clock are skipped (their
# events depend on the machine).
#
#   scripts/same-events.sh OLD_FEDSP NEW_FEDSP SCENARIO.yaml... [-- --seed N]
set -uo pipefail
old=$1 new=$2; shift 2
scenarios=() extra=()
while [[ $# -gt 0 ]]; do
  if [[ $1 == -- ]]; then shift; extra=("$@"); break; fi
  scenarios+=("$1"); shift
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
strip() { sed -E 's/,"wall_[a-z_]+":[-0-9.e+]+//g' "$1"; }
differ=0
for sc in "${scenarios[@]}"; do
  if grep -qE '^\s*clock:\s*real' "$sc"; then echo "skip  $sc (real clock)"; continue; fi
  for side in old new; do
    bin=${!side}
    "$bin" run "$sc" --out "$tmp/$side" --quiet --overwrite "${extra[@]}" >/dev/null 2>"$tmp/$side.err" \
      || { echo "FAIL  $sc: the $side binary failed:"; cat "$tmp/$side.err"; differ=1; continue 2; }
    strip "$tmp/$side/events.jsonl" >"$tmp/$side.events"
  done
  if cmp -s "$tmp/old.events" "$tmp/new.events"; then
    echo "same  $sc ($(wc -l <"$tmp/new.events") events)"
  else
    echo "DIFF  $sc:"; diff "$tmp/old.events" "$tmp/new.events" | head -6; differ=1
  fi
done
exit $differ
