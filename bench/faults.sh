#!/usr/bin/env bash
# SIGKILL at random points, many times: `fedsp run` of
# tests/integration/resume.yaml (async FedBuff, 20 mlp clients, 60 versions)
# is killed with SIGKILL after a random 0.5-2.5 s, resumed and killed again
# up to 3 times, then resumed to the end; every trial must pass `fedsp check`
# and reach version 60. Prints one row per trial and a summary: how many
# kills landed, what the resumes replayed from the log, tasks lost with the
# process, and the final accuracy against an uninterrupted run.
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
PY
[[ $failed -eq 0 ]] && echo "every trial passed fedsp check" || { echo "$failed trial(s) failed"; exit 1; }
