#!/usr/bin/env bash
# SIGKILL at random points, many times: `fedsp run` of
# tests/integration/resume.yaml (async FedBuff, 20 mlp clients, 60 versions)
# is killed with SIGKILL after a random 0.5-2.5 s, resumed and killed again
# up to 3 times, then resumed to the end; every trial must pass `fedsp check`
# and reach version 60. Prints one row per trial and a summary: how many
# kills landed, what the resumes replayed from the log, tasks lost with the
# process, and the final accuracy against an uninterrupted run.
#
# Then as many trials killed before their first checkpoint (issue 15, D8):
# `fedsp run` of tests/integration/early_kill.yaml (FedBuff buffer 16) is
# killed the moment its log holds a random 1-12 records, resumed, killed
# again after a random 0.3-1.0 s, and resumed to the end; each must pass
# `fedsp check` and reach version 15.
#
#   bash bench/faults.sh [BUILD_DIR] [TRIALS] [SEED]
set -euo pipefail
build=${1:-build}
trials=${2:-20}
RANDOM=${3:-5}
src=$(cd "$(dirname "$0")/.." && pwd)
scenario=$src/tests/integration/resume.yaml
work=$(mktemp -d /tmp/fedsp-faults.XXXXXX)
trap 'rm -rf "$work"' EXIT
fedsp=$build/fedsp
draw() { awk -v r="$RANDOM" -v lo="$1" -v span="$2" 'BEGIN { printf "%.2f", lo + (r % 1000) / 1000 * span }'; }
kill_after() {
  local wait=$1; shift
  "$@" >/dev/null 2>&1 &
  local pid=$!
  sleep "$wait"
  if kill -9 "$pid" 2>/dev/null; then wait "$pid" 2>/dev/null || true; return 0; fi
  wait "$pid" 2>/dev/null || true
  return 1
}
"$fedsp" run "$scenario" --out "$work/clean" --quiet --seed 1 >/dev/null
failed=0
for trial in $(seq 1 "$trials"); do
  dir=$work/t$trial
  kills=0
  kill_after "$(draw 0.5 2.0)" "$fedsp" run "$scenario" --out "$dir" --quiet --seed 1 && kills=$((kills + 1))
  [[ -f $dir/run.json ]] || "$fedsp" run "$scenario" --out "$dir" --quiet --seed 1 >/dev/null 2>&1
  for again in 1 2 3; do
    [[ -f $dir/summary.json ]] && break
    kill_after "$(draw 0.5 2.0)" "$fedsp" resume "$dir" --quiet && kills=$((kills + 1))
  done
  [[ -f $dir/summary.json ]] || "$fedsp" resume "$dir" --quiet >/dev/null 2>&1 || true
  if ! "$fedsp" check "$dir" >"$work/check" 2>&1; then
    failed=$((failed + 1)); echo "trial $trial FAILED:"; cat "$work/check"
  fi
  echo "$kills" >"$dir/kills"
done
# Kills before the first checkpoint.
early=$src/tests/integration/early_kill.yaml
log_records() { cat "$1"/wal/wal-*.log 2>/dev/null | grep -aoF FWAL | wc -l; }
for trial in $(seq 1 "$trials"); do
  dir=$work/e$trial
  want=$((1 + RANDOM % 12))
  "$fedsp" run "$early" --out "$dir" --quiet --seed "$trial" >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 1 4000); do
    [[ -f $dir/checkpoint.bin || $(log_records "$dir") -ge $want ]] && break
    sleep 0.005
  done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  kills=1
  [[ -f $dir/run.json ]] || "$fedsp" run "$early" --out "$dir" --quiet --seed "$trial" >/dev/null 2>&1
  if [[ ! -f $dir/summary.json ]]; then
    kill_after "$(draw 0.3 0.7)" "$fedsp" resume "$dir" --quiet && kills=$((kills + 1))
  fi
  [[ -f $dir/summary.json ]] || "$fedsp" resume "$dir" --quiet >/dev/null 2>&1 || true
  if ! "$fedsp" check "$dir" >"$work/check" 2>&1 || ! grep -q '"final_version":15' "$dir/summary.json"; then
    failed=$((failed + 1)); echo "early trial $trial FAILED:"; cat "$work/check"
  fi
  echo "$kills $want" >"$dir/kills"
done
python3 - "$work" "$trials" <<'PY'
import json, statistics, sys
work, trials = sys.argv[1], int(sys.argv[2])
clean = json.load(open(f"{work}/clean/summary.json"))["final"]["global"]["test_acc"]
print("| trial | SIGKILLs | resumes | replayed updates | torn records | tasks interrupted | final version | test acc |")
print("|---|---|---|---|---|---|---|---|")
accs, kills, replayed = [], 0, 0
for t in range(1, trials + 1):
    d = f"{work}/t{t}"
    s = json.load(open(f"{d}/summary.json"))
    ev = [json.loads(l) for l in open(f"{d}/events.jsonl")]
    res = [e for e in ev if e["type"] == "resumed"]
    rep = sum(e["replayed_updates"] for e in res)
    torn = sum(e["torn_records"] for e in res)
    k = int(open(f"{d}/kills").read())
    acc = s["final"]["global"]["test_acc"]
    accs.append(acc); kills += k; replayed += rep
    print(f"| {t} | {k} | {len(res)} | {rep} | {torn} | {s['tasks_interrupted']} | {s['final_version']} | {acc:.3f} |")
print()
print(f"{trials} trials, {kills} SIGKILLs, {replayed} updates replayed from the log; "
      f"test acc median {statistics.median(accs):.3f} (min {min(accs):.3f}, max {max(accs):.3f}) "
      f"against {clean:.3f} uninterrupted")
print()
print("Killed before the first checkpoint (tests/integration/early_kill.yaml):")
print()
print("| trial | SIGKILLs | killed at log records | resumes without a checkpoint | replayed updates | final version |")
print("|---|---|---|---|---|---|")
before = 0
for t in range(1, trials + 1):
    d = f"{work}/e{t}"
    s = json.load(open(f"{d}/summary.json"))
    ev = [json.loads(l) for l in open(f"{d}/events.jsonl")]
    res = [e for e in ev if e["type"] == "resumed"]
    nock = sum(1 for e in res if not e["checkpoint"])
    before += nock > 0
    k, want = open(f"{d}/kills").read().split()
    print(f"| {t} | {k} | {want} | {nock} | {sum(e['replayed_updates'] for e in res)} | {s['final_version']} |")
print()
print(f"{before} of {trials} trials resumed from a log with no checkpoint yet")
PY
[[ $failed -eq 0 ]] && echo "every trial passed fedsp check" || { echo "$failed trial(s) failed"; exit 1; }
