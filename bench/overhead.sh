#!/usr/bin/env bash
# The runtime's own cost per update, on a workload other frameworks can run
# too: N clients, a parameter set of S floats, a trainer that does nothing
# (model.kind null) or one SGD step of a 64->128->10 MLP on 32 synthetic
# samples (model.kind mlp, S = 9,610); FedAvg, all clients every round, no
# evaluation between rounds, virtual clock, one worker.
#
# Prints, per case: per-update time (median round wall time / N), set-up
# time (process start to the first round), peak RSS, and the RSS of N idle
# clients (a run with 1 float and no round worth mentioning) for the memory
# target. Wall-clock rounds come from events.jsonl's wall_ms.
#
#   bash bench/overhead.sh [BUILD_DIR] [N...]
#   CHECKPOINTS=true bash bench/overhead.sh ...    # with the write-ahead log
#                                                  # and checkpoints (the
#                                                  # default of a scenario)
#
# Without CHECKPOINTS=true the runs keep nothing on disk but their events,
# like the frameworks the figures are compared with.
set -euo pipefail
build=${1:-build}
shift || true
ns=("$@")
[[ ${#ns[@]} -gt 0 ]] || ns=(1 10 100 1000 10000)
work=$(mktemp -d /tmp/fedsp-overhead.XXXXXX)
trap 'rm -rf "$work"' EXIT

scenario() { # kind params n rounds > yaml
  cat <<YAML
name: overhead
seed: 1
model:
  kind: $1
  parameters: $2
data:
  train: $(( $3 < 10 ? 10 : $3 ))
  test: 10
  public: 10
clients:
  count: $3
method:
  name: fedprompt
training:
  prompt_steps: 1
  prompt_lr: 0.1
federation:
  rounds: $4
eval:
  every: 1000000
durability:
  checkpoints: ${CHECKPOINTS:-false}
YAML
}

run_case() { # kind params n rounds
  local kind=$1 params=$2 n=$3 rounds=$4 dir="$work/$1-$2-$3"
  scenario "$kind" "$params" "$n" "$rounds" > "$work/s.yaml"
  local start
  start=$(date +%s%3N)
  "$build/fedsp" run "$work/s.yaml" --out "$dir" --quiet > /dev/null
  python3 - "$dir" "$n" "$start" "$kind" "$params" <<'PY'
import json, statistics, sys
d, n, start, kind, params = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
ev = [json.loads(l) for l in open(d + "/events.jsonl")]
# round times from wall_elapsed_s (microseconds), set-up from wall_ms
begin = {e["round"]: e["wall_elapsed_s"] * 1000 for e in ev if e["type"] == "round"}
end = {e["round"]: e["wall_elapsed_s"] * 1000 for e in ev if e["type"] == "publish"}
rounds = [end[r] - begin[r] for r in begin if r in end]
first = min((e for e in ev if e["type"] == "round"), key=lambda e: e["wall_elapsed_s"])
s = json.load(open(d + "/summary.json"))
setup = (first["wall_ms"] - start) / 1000
per = statistics.median(rounds) * 1000 / n
size = "9,610 (mlp)" if kind == "mlp" else f"{int(params):,}"
print(f"| {kind} | {size} | {n:,} | {per:,.1f} | {statistics.median(rounds):,.2f} | {setup:.2f} | {s['peak_rss_mb']:,.0f} |")
PY
}

echo "| trainer | S floats | N clients | µs per update | median round ms | set-up s | peak RSS MB |"
echo "|---|---|---|---|---|---|---|"
for n in "${ns[@]}"; do
  rounds=$(( n >= 10000 ? 3 : 5 ))
  run_case null 9610 "$n" "$rounds"
  run_case mlp 9610 "$n" "$rounds"
  (( n <= 100 )) && run_case null 1035010 "$n" "$rounds"
done
# Memory of idle clients: N clients with a 1-float parameter set, one round.
echo
echo "| idle clients | peak RSS MB |"
echo "|---|---|"
for n in 1 10000; do
  dir="$work/idle-$n"
  scenario null 1 "$n" 1 > "$work/i.yaml"
  "$build/fedsp" run "$work/i.yaml" --out "$dir" --quiet > /dev/null
  python3 -c "import json,sys; print(f'| {int(sys.argv[1]):,} | {json.load(open(sys.argv[2]))[\"peak_rss_mb\"]:,.0f} |')" "$n" "$dir/summary.json" 2>/dev/null || true
done
