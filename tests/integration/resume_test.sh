#!/usr/bin/env bash
# SIGKILL of `fedsp run` at random points, then `fedsp resume` (killed again
# at random, then let finish): the run must reach its configured versions
# with every accepted update folded exactly once (`fedsp check`).
# usage: resume_test.sh <fedsp binary> <source dir> [trials] [seed]
set -uo pipefail
fedsp=$1
src=$2
trials=${3:-3}
RANDOM=${4:-17} # the kill times are reproducible
scenario=$src/tests/integration/resume.yaml
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
# kill_after <seconds> <command...>: runs it and kills it with SIGKILL then
# (if it is still running); returns 0 if it was killed.
kill_after() {
  local wait=$1; shift
  "$@" >/dev/null 2>&1 &
  local pid=$!
  sleep "$wait"
  if kill -9 "$pid" 2>/dev/null; then wait "$pid" 2>/dev/null; return 0; fi
  wait "$pid" 2>/dev/null
  return 1
}
draw() { awk -v r="$RANDOM" -v lo="$1" -v span="$2" 'BEGIN { printf "%.2f", lo + (r % 1000) / 1000 * span }'; }

for trial in $(seq 1 "$trials"); do
  dir=$tmp/run$trial
  kills=0
  t=$(draw 0.8 2.5)
  kill_after "$t" "$fedsp" run "$scenario" --out "$dir" --quiet --seed "$trial" && kills=$((kills + 1))
  [[ -f $dir/run.json ]] || "$fedsp" run "$scenario" --out "$dir" --quiet --seed "$trial" >/dev/null 2>&1
  for again in 1 2; do
    [[ -f $dir/summary.json ]] && break
    t=$(draw 0.6 2.0)
    kill_after "$t" "$fedsp" resume "$dir" --quiet && kills=$((kills + 1))
  done
  if [[ ! -f $dir/summary.json ]] && ! "$fedsp" resume "$dir" --quiet >"$tmp/out" 2>&1; then
    echo "FAIL - trial $trial: resume failed"; cat "$tmp/out"; failures=$((failures + 1)); continue
  fi
  if ! "$fedsp" check "$dir" >"$tmp/check"; then
    echo "FAIL - trial $trial: invariants broken"; cat "$tmp/check"; failures=$((failures + 1)); continue
  fi
  final=$(grep -o '"final_version":[0-9]*' "$dir/summary.json" | cut -d: -f2)
  if [[ $final != 60 ]]; then
    echo "FAIL - trial $trial: final version $final, wanted 60"; failures=$((failures + 1)); continue
  fi
  if ! "$fedsp" resume "$dir" | grep -q "already finished"; then
    echo "FAIL - trial $trial: resume of a finished run"; failures=$((failures + 1)); continue
  fi
  echo "ok   - trial $trial: $kills SIGKILL(s), $(head -n 1 "$tmp/check" | sed 's/^[^:]*: //')"
done
[[ $failures -eq 0 ]] || { echo "$failures trial(s) failed"; exit 1; }
