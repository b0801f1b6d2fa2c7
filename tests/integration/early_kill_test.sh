#!/usr/bin/env bash
# Kills before the first checkpoint (issue 15, D8): the log holds accepted
# updates, no version but 0 is on disk. After `fedsp resume` (or the
# in-process restart of a server_crash fault) every accepted update must be
# folded exactly once (`fedsp check`), at every kill point.
#   1. server_crash faults at 8 points of the virtual clock, before version 1;
#   2. SIGKILL of `fedsp run` the moment its log first holds N records
#      (N = 1, 4, 8, 12), a state reached on any machine at any speed.
# usage: early_kill_test.sh <fedsp binary> <source dir>
set -uo pipefail
fedsp=$1
src=$2
scenario=$src/tests/integration/early_kill.yaml
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$src/tests/integration/checks.sh"

# finished_once <dir>: the run finished at version 15, no checkpoint was
# there at the crash, and check finds every invariant kept.
finished_once() {
  local dir=$1
  "$fedsp" check "$dir" >"$tmp/check" || { cat "$tmp/check"; return 1; }
  grep -q '"final_version":15' "$dir/summary.json" || { echo "  not at version 15"; return 1; }
  grep -q '"type":"resumed".*"checkpoint":false' "$dir/events.jsonl" \
    || { echo "  the crash came after the first checkpoint: this case tests nothing"; return 1; }
  grep -q '"type":"resumed".*"replayed_updates":[1-9]' "$dir/events.jsonl" \
    || { echo "  the log held no update at the crash: this case tests nothing"; return 1; }
}

for at in 0.2 0.5 1 2 3 4 6 8; do
  sed "s/^compute:/faults:\n  - kind: server_crash\n    at_s: $at\n    restart_after_s: 0.1\ncompute:/" \
    "$scenario" >"$tmp/crash.yaml"
  dir=$tmp/crash-$at
  "$fedsp" run "$tmp/crash.yaml" --out "$dir" --quiet >"$tmp/out" 2>&1
  check "server_crash at ${at}s (before version 1): run exits 0" test $? -eq 0
  check "server_crash at ${at}s: every accepted update folded once" finished_once "$dir"
done

# log_records <dir>: records in the write-ahead log so far (each starts
# with the magic "FWAL").
log_records() {
  cat "$1"/wal/wal-*.log 2>/dev/null | grep -aoF FWAL | wc -l
}

for n in 1 4 8 12; do
  dir=$tmp/kill-$n
  "$fedsp" run "$scenario" --out "$dir" --quiet >/dev/null 2>&1 &
  pid=$!
  # The run is frozen (SIGSTOP) before each look, so the kill leaves
  # exactly what was seen: no checkpoint can slip in between.
  for _ in $(seq 1 2000); do
    kill -STOP "$pid" 2>/dev/null || break
    [[ -f $dir/checkpoint.bin ]] && break
    [[ $(log_records "$dir") -ge $n ]] && break
    kill -CONT "$pid"
    sleep 0.005
  done
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  if [[ -f $dir/checkpoint.bin ]]; then
    echo "skip - SIGKILL at $n logged record(s): the first checkpoint came first on this machine"
    continue
  fi
  "$fedsp" resume "$dir" --quiet >"$tmp/out" 2>&1
  check "SIGKILL at $n logged record(s): resume exits 0" test $? -eq 0
  check "SIGKILL at $n logged record(s): every accepted update folded once" finished_once "$dir"
done
echo "$passes passed, $failures failed"
[[ $failures -eq 0 ]]
