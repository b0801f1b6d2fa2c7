#!/usr/bin/env bash
# The runtime's own cost per update, on a workload other frameworks can run
# too: N clients, a parameter set of S floats, a trainer that does nothing
# (model.kind null) or SGD steps of an MLP on 32 synthetic samples
# (model.kind mlp: 64->128->10, S = 9,610; or 1024->1000->10, S = 1,035,010);
# FedAvg, all clients every round, no evaluation between rounds, virtual
# clock, one worker.
#
# Prints, per case: per-update time (median round wall time / N), set-up
# time (process start to the first round), peak RSS, for the mlp the bare
# training step of the same MLP timed in the same run (fedsp_mlp_step), and
# the figures FederatedScope and Flower reached on the same workload on this
# machine (recorded constants, see PEERS below). Then where one large
# update's time goes (fedsp_update_stages), and the RSS of idle clients.
# Wall-clock rounds come from events.jsonl's wall_elapsed_s.
#
#   bash bench/overhead.sh [BUILD_DIR] [N...]      (N: 10 100 1000 10000)
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
[[ ${#ns[@]} -gt 0 ]] || ns=(10 100 1000 10000)
work=$(mktemp -d /tmp/fedsp-overhead.XXXXXX)
trap 'rm -rf "$work"' EXIT

# FederatedScope 0.3.0 and Flower 1.6.0 on this machine, 2026-12-01 (issue
# 16): run from their tagged sources with Debian's Python packages, the same
# workload (32 synthetic samples per client, 1 SGD step, FedAvg over all N),
# in-process simulation for FederatedScope, gRPC with 2 client processes for
# Flower; medians of 2 runs each, ms per update and peak RSS MB. Recorded
# here, not rerun: neither is installed by this repository.
declare -A PEERS=(
  ["mlp 9610 100"]="Flower 5.4-5.6 ms, 906 MB"
  ["mlp 9610 1000"]="FederatedScope 1.53-2.17 ms, 485 MB; Flower: no round started in 300 s"
  ["mlp 1035010 10"]="FederatedScope 7.7-9.6 ms, 408 MB; Flower 128-162 ms, 1,923 MB"
)

scenario() { # kind params n rounds > yaml
  local shape=""
  [[ $1 == mlp && $2 == 1035010 ]] && shape=$'\n  mlp_input: 1024\n  mlp_hidden: 1000'
  cat <<YAML
name: overhead
seed: 1
model:
  kind: $1
  parameters: $2$shape
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

bare_step() { # in hidden -> ms of the bare torch step
  "$build/bench/fedsp_mlp_step" "$1" "$2" 10 32 100 | sed -n 's/^bare torch step.*  \([0-9.]*\) ms$/\1/p'
}
step_small=$(bare_step 64 128)
step_large=$(bare_step 1024 1000)

run_case() { # kind params n rounds
  local kind=$1 params=$2 n=$3 rounds=$4 dir="$work/$1-$2-$3"
  scenario "$kind" "$params" "$n" "$rounds" > "$work/s.yaml"
  local start step="" peer=${PEERS["$kind $params $n"]:-}
  [[ $kind == mlp ]] && step=$([[ $params == 1035010 ]] && echo "$step_large" || echo "$step_small")
  start=$(date +%s%3N)
  "$build/fedsp" run "$work/s.yaml" --out "$dir" --quiet > /dev/null
  python3 - "$dir" "$n" "$start" "$kind" "$params" "$step" "$peer" <<'PY'
import json, statistics, sys
d, n, start, kind, params, step, peer = sys.argv[1:8]
n, start = int(n), int(start)
ev = [json.loads(l) for l in open(d + "/events.jsonl")]
begin = {e["round"]: e["wall_elapsed_s"] * 1000 for e in ev if e["type"] == "round"}
end = {e["round"]: e["wall_elapsed_s"] * 1000 for e in ev if e["type"] == "publish"}
rounds = [end[r] - begin[r] for r in begin if r in end]
first = min((e for e in ev if e["type"] == "round"), key=lambda e: e["wall_elapsed_s"])
s = json.load(open(d + "/summary.json"))
setup = (first["wall_ms"] - start) / 1000
per = statistics.median(rounds) / n
size = f"{int(params):,}" + (" (mlp)" if kind == "mlp" else "")
step = f"{float(step):.3f}" if step else "–"
print(f"| {kind} | {size} | {n:,} | {per:.3f} | {step} | {setup:.2f} | {s['peak_rss_mb']:,.0f} | {peer or '–'} |")
PY
}

echo "| trainer | S floats | N clients | ms per update | bare step ms | set-up s | peak RSS MB | FederatedScope / Flower on this machine, 2026-12-01 |"
echo "|---|---|---|---|---|---|---|---|"
for n in "${ns[@]}"; do
  rounds=$(( n >= 10000 ? 3 : n >= 1000 ? 5 : 10 ))
  run_case null 9610 "$n" "$rounds"
  run_case mlp 9610 "$n" "$rounds"
  if (( n <= 100 )); then
    run_case null 1035010 "$n" 20
    run_case mlp 1035010 "$n" 20
  fi
  (( n == 10 )) && run_case null 1966080 "$n" 20 # gpt2-medium's deep prompts
done

echo
echo "Where one update of 1,035,010 floats goes (fedsp_update_stages):"
"$build/bench/fedsp_update_stages" 1035010 60 | tail -n +2
echo
echo "... and of 1,966,080 floats (gpt2-medium's prompts):"
"$build/bench/fedsp_update_stages" 1966080 40 | tail -n +2

# Memory of idle clients: N clients with a 1-float parameter set, one round.
echo
echo "| idle clients | peak RSS MB |"
echo "|---|---|"
for n in 1 10000 ${IDLE_100K:+100000}; do
  dir="$work/idle-$n"
  scenario null 1 "$n" 1 > "$work/i.yaml"
  "$build/fedsp" run "$work/i.yaml" --out "$dir" --quiet > /dev/null
  python3 -c "import json,sys; print(f'| {int(sys.argv[1]):,} | {json.load(open(sys.argv[2]))[\"peak_rss_mb\"]:,.0f} |')" "$n" "$dir/summary.json" 2>/dev/null || true
done
