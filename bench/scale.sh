#!/usr/bin/env bash
# The runtime at scale, in one process: time per update, peak memory and
# set-up time against the number of clients, N = 10 ... 100,000, with the
# null trainer and 9,610 floats (scenarios/many-clients-100k.yaml at each N),
# the same asynchronously (FedBuff), and the memory of idle clients (a
# 1-float parameter set, one round).
# Prints a table and draws bench/scale-time.svg and bench/scale-memory.svg
# with fedsp's own plotting (fedsp_scale_plot, runtime/report.hpp).
#
#   bash bench/scale.sh [BUILD_DIR] [N...]      (default N: 10 ... 100000)
#
# About 1.5 minutes on the 2-core machine of bench/README.md.
set -euo pipefail
build=${1:-build}
shift || true
ns=("$@")
[[ ${#ns[@]} -gt 0 ]] || ns=(10 100 1000 10000 100000)
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/fedsp-scale.XXXXXX)
trap 'rm -rf "$work"' EXIT
csv="$work/scale.csv"
echo "series,clients,us_per_update,peak_rss_mb" > "$csv"

scenario() { # params n rounds > yaml
  sed -e "s/^  parameters: .*/  parameters: $1/" -e "s/^  count: .*/  count: $2/" \
      -e "s/^  train: .*/  train: $(( $2 < 10 ? 10 : $2 ))/" -e "s/^  rounds: .*/  rounds: $3/" \
      "$here/../scenarios/many-clients-100k.yaml"
}

# Async: FedBuff folding every 1,000 updates, 256 tasks in flight (or every
# client, if fewer), 6 versions; per update is the median time between two
# versions over 1,000.
async_sets=(--set federation.mode=async --set federation.aggregator=fedbuff
            --set federation.buffer_size=1000 --set federation.versions=6)

measure() { # label params n rounds [--set ...] -> a table row and a csv line
  local label=$1 params=$2 n=$3 rounds=$4 dir="$work/$1-$3" start
  shift 4
  scenario "$params" "$n" "$rounds" > "$work/s.yaml"
  start=$(date +%s%3N)
  "$build/fedsp" run "$work/s.yaml" --out "$dir" --quiet "$@" > /dev/null
  python3 - "$dir" "$n" "$start" "$label" "$csv" <<'PY'
import json, statistics, sys
d, n, start, label, csv = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
ev = [json.loads(l) for l in open(d + "/events.jsonl")]
s = json.load(open(d + "/summary.json"))
rss = s["peak_rss_mb"]
if label == "async":
    pub = sorted(e["wall_elapsed_s"] for e in ev if e["type"] == "publish")
    first = min(e["wall_ms"] for e in ev if e["type"] == "task")
    us = statistics.median(b - a for a, b in zip(pub, pub[1:])) * 1e6 / 1000
else:
    begin = {e["round"]: e["wall_elapsed_s"] for e in ev if e["type"] == "round"}
    end = {e["round"]: e["wall_elapsed_s"] for e in ev if e["type"] == "publish"}
    rounds = [end[r] - begin[r] for r in begin if r in end]
    first = min(e["wall_ms"] for e in ev if e["type"] == "round")
    us = statistics.median(rounds) * 1e6 / n
setup = (first - start) / 1000
if label == "idle":
    print(f"| idle (1 float) | {n:,} | – | {setup:.2f} | {rss:,.0f} |")
    open(csv, "a").write(f"idle clients (1 float),{n},-,{rss:.1f}\n")
elif label == "async":
    print(f"| null, 9,610 floats, async | {n:,} | {us:.1f} | {setup:.2f} | {rss:,.0f} |")
    open(csv, "a").write(f"async FedBuff (9610 floats),{n},{us:.2f},{rss:.1f}\n")
else:
    print(f"| null, 9,610 floats | {n:,} | {us:.1f} | {setup:.2f} | {rss:,.0f} |")
    open(csv, "a").write(f"null trainer (9610 floats),{n},{us:.2f},{rss:.1f}\n")
PY
}

echo "| clients | N | µs per update | set-up s | peak RSS MB |"
echo "|---|---|---|---|---|"
for n in "${ns[@]}"; do
  measure active 9610 "$n" $(( n >= 10000 ? 3 : 10 ))
done
for n in "${ns[@]}"; do
  measure async 9610 "$n" 1 "${async_sets[@]}" --set federation.concurrency=$(( n < 256 ? n : 256 ))
done
for n in 1 "${ns[@]}"; do
  measure idle 1 "$n" 1
done
"$build/bench/fedsp_scale_plot" "$csv" "$here/scale-time.svg" "$here/scale-memory.svg"
echo
echo "figures: bench/scale-time.svg, bench/scale-memory.svg"
