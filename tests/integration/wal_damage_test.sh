#!/usr/bin/env bash
# A run directory damaged after a SIGKILL (issue 15, D10 and the minor
# cases): resume refuses what it cannot vouch for, naming it, and changes
# nothing; --salvage goes on past a damaged log and check reports the loss.
# usage: wal_damage_test.sh <fedsp binary> <source dir>
set -uo pipefail
fedsp=$1
src=$2
scenario=$src/tests/integration/early_kill.yaml
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$src/tests/integration/checks.sh"

log_records() { cat "$1"/wal/wal-*.log 2>/dev/null | grep -aoF FWAL | wc -l; }

# A run killed after its first checkpoint with 6 or more updates in its log.
orig=$tmp/orig
"$fedsp" run "$scenario" --out "$orig" --quiet >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 4000); do
  [[ -f $orig/checkpoint.bin && $(log_records "$orig") -ge 6 ]] && break
  sleep 0.005
done
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
if [[ -f $orig/summary.json || ! -f $orig/checkpoint.bin ]]; then
  echo "FAIL - could not stop the run with a checkpoint and a log to damage"; exit 1
fi
segment=$(for f in "$orig"/wal/wal-*.log; do [[ -s $f ]] && echo "$f"; done | tail -n 1)
segment=${segment##*/}

fresh() { rm -rf "$tmp/r"; cp -r "$orig" "$tmp/r"; }
# refused <what> <stderr pattern>: resume exits 1 naming it, the directory
# unchanged (but for fedsp.log, which records the refusal)
refused() {
  local before after
  before=$(cd "$tmp/r" && find . -type f ! -name fedsp.log -exec md5sum {} + | sort)
  expect_fail 1 "$2" "$fedsp" resume "$tmp/r" --quiet || return 1
  after=$(cd "$tmp/r" && find . -type f ! -name fedsp.log -exec md5sum {} + | sort)
  [[ $before == "$after" ]] || { echo "  the refused resume changed the directory"; return 1; }
}

fresh
size=$(stat -c %s "$tmp/r/wal/$segment")
printf '\xff' | dd of="$tmp/r/wal/$segment" bs=1 seek=$((size - 100)) conv=notrunc 2>/dev/null
check "a flipped byte in a whole log record is refused, naming segment and byte" \
  refused flip "$segment at byte [0-9]*: damaged record"
check "... and --salvage goes on" bash -c "'$fedsp' resume '$tmp/r' --salvage --quiet >/dev/null"
check "... saying how many acknowledged updates were lost" \
  grep -q '"type":"updates_lost","t":[0-9.e+-]*,"count":[1-9]' "$tmp/r/events.jsonl"
check "... which check reports" bash -c "! '$fedsp' check '$tmp/r' >'$tmp/c'; grep -q 'VIOLATION: .*acknowledged update(s) lost' '$tmp/c'"

fresh
truncate -s -3000 "$tmp/r/wal/$segment"
check "a log cut short (acknowledged updates gone) is refused" \
  refused cut "acknowledged update(s) are not in .*/wal (task "
check "... --salvage goes on and check reports it" \
  bash -c "'$fedsp' resume '$tmp/r' --salvage --quiet >/dev/null && ! '$fedsp' check '$tmp/r' >/dev/null"

fresh
rm -r "$tmp/r/wal"
check "a deleted log is refused" refused wal "acknowledged update(s) are not in"

fresh
cp "$tmp/r/wal/$segment" "$tmp/r/wal/wal-00099999.log"
check "a copied segment (tasks logged twice) is refused" refused copy "is logged twice"

fresh
rm "$tmp/r/checkpoint.bin"
check "a deleted checkpoint is refused" refused ckpt "announced version [0-9]* but there is no checkpoint.bin"

fresh
rm "$tmp/r/events.jsonl"
check "a deleted events.jsonl is refused" refused events "events.jsonl is missing"

fresh
check "the undamaged directory resumes" bash -c "'$fedsp' resume '$tmp/r' --quiet >/dev/null"
check "... with every invariant kept" bash -c "'$fedsp' check '$tmp/r' >/dev/null"

echo "$passes passed, $failures failed"
[[ $failures -eq 0 ]]
