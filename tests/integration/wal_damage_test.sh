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

# segment_to_damage <run dir>: the newest log segment, as "<name> <offset
# of each record>...", if it holds 3 or more records. Only the newest one is
# surely above the checkpoint's mark: a fold rotates to a new segment, and
# the older ones may already be covered by a checkpoint (resume then rightly
# ignores damage to them).
segment_to_damage() {
  local f starts newest=
  for f in "$1"/wal/wal-*.log; do [[ -f $f ]] && newest=$f; done
  [[ -n $newest ]] || return 1
  starts=$(grep -aobF FWAL "$newest" | cut -d: -f1 | tr '\n' ' ')
  (( $(wc -w <<<"$starts") >= 3 )) && echo "${newest##*/} $starts"
}

# A run killed after its first checkpoint with 3 or more records in its
# newest log segment. The run is frozen (SIGSTOP) before it is looked at, so what is
# seen is what the kill leaves: a fold and checkpoint that empty the log
# cannot slip in between the look and the kill.
orig=$tmp/orig
"$fedsp" run "$scenario" --out "$orig" --quiet >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 4000); do
  kill -STOP "$pid" 2>/dev/null || break
  [[ -f $orig/checkpoint.bin ]] && segment_to_damage "$orig" >/dev/null && break
  kill -CONT "$pid"
  sleep 0.005
done
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
if [[ -f $orig/summary.json || ! -f $orig/checkpoint.bin ]] || ! segment_to_damage "$orig" >/dev/null; then
  echo "FAIL - could not stop the run with a checkpoint and a log to damage"; exit 1
fi
# The kill can land while a record is being written, leaving the segment's
# last record torn (that is legal: it was never acknowledged). The damage
# goes into the record two before the last one's start, which was whole and
# acknowledged before the last record was begun.
read -r segment starts <<<"$(segment_to_damage "$orig")"
read -ra starts <<<"$starts"
inside=$(( starts[${#starts[@]} - 2] - 100 ))

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
byte=$(od -An -tu1 -j "$inside" -N1 "$tmp/r/wal/$segment")
printf "\\x$(printf %02x $((byte ^ 0xff)))" |
  dd of="$tmp/r/wal/$segment" bs=1 seek="$inside" conv=notrunc 2>/dev/null
check "a flipped byte in a whole log record is refused, naming segment and byte" \
  refused flip "$segment at byte [0-9]*: damaged record"
check "... and --salvage goes on" bash -c "'$fedsp' resume '$tmp/r' --salvage --quiet >/dev/null"
check "... saying how many acknowledged updates were lost" \
  grep -q '"type":"updates_lost","t":[0-9.e+-]*,"count":[1-9]' "$tmp/r/events.jsonl"
check "... which check reports" bash -c "! '$fedsp' check '$tmp/r' >'$tmp/c'; grep -q 'VIOLATION: .*acknowledged update(s) lost' '$tmp/c'"

# The segment's first record holds the base prompts its updates were sent;
# without it they cannot be replayed, so --salvage counts them as lost too
# (once it replayed nothing and said nothing, and check found them unfolded).
fresh
byte=$(od -An -tu1 -j 100 -N1 "$tmp/r/wal/$segment")
printf "\\x$(printf %02x $((byte ^ 0xff)))" |
  dd of="$tmp/r/wal/$segment" bs=1 seek=100 conv=notrunc 2>/dev/null
check "a flipped byte in the base prompts' record is refused" \
  refused base "$segment at byte 0: damaged record"
check "... and --salvage counts the updates logged against it as lost" \
  bash -c "'$fedsp' resume '$tmp/r' --salvage --quiet >/dev/null &&
    grep -q '\"type\":\"updates_lost\",\"t\":[0-9.e+-]*,\"count\":[1-9]' '$tmp/r/events.jsonl'"
check "... and check blames the loss, not an unfolded update" \
  bash -c "! '$fedsp' check '$tmp/r' >'$tmp/c'; grep -q 'VIOLATION: .*acknowledged update(s) lost' '$tmp/c' && ! grep -q 'never folded' '$tmp/c'"

fresh
truncate -s "$inside" "$tmp/r/wal/$segment"
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
