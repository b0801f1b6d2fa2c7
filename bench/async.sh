#!/usr/bin/env bash
# Sync FedAvg against FedBuff and FedAsync on the straggler clients of
# scenarios/stragglers-*.yaml (50 clients, 30% ten times slower, 20 training
# at a time, the same 240 client updates in all): virtual time to a target
# test accuracy, seeds 1-3, written into bench/README.md between the
# ASYNC-TABLE markers and printed.
#
#   bash bench/async.sh [BUILD_DIR] [TARGET]     (TARGET default 0.75)
set -euo pipefail
build=${1:-build}
target=${2:-0.75}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/fedsp-async.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp "$root/scenarios/stragglers-sync.yaml" "$work/sync.yaml"
cp "$root/scenarios/stragglers-async.yaml" "$work/fedbuff.yaml"
# Sync with a 5 s deadline: rounds close without the slow clients (their
# updates are dropped); quorum 10.
sed -e 's/^  round_deadline_s: 100000.*$/  round_deadline_s: 5\n  quorum: 10/' \
    "$root/scenarios/stragglers-sync.yaml" > "$work/sync_deadline.yaml"
# FedAsync: one version per update (240), mixing rate 0.5, scored every 5.
sed -e 's/^  aggregator: fedbuff/  aggregator: fedasync\n  fedasync_alpha: 0.5/' \
    -e 's/^  versions: 24$/  versions: 240/' \
    -e 's/^  every: 1$/  every: 5/' "$root/scenarios/stragglers-async.yaml" > "$work/fedasync.yaml"
for s in sync sync_deadline fedbuff fedasync; do
  for seed in 1 2 3; do
    "$build/fedsp" run "$work/$s.yaml" --seed "$seed" --out "$work/$s-$seed" --quiet > /dev/null
  done
done
python3 - "$work" "$target" "$root/bench/README.md" <<'PY'
import csv, json, statistics, sys
work, target, readme = sys.argv[1], float(sys.argv[2]), sys.argv[3]
names = {"sync": "sync FedAvg (20 per round, waits for all)",
         "sync_deadline": "sync FedAvg, 5 s deadline (late updates dropped)",
         "fedbuff": "FedBuff (K = 10, concurrency 20, s = 1/sqrt(1+tau))",
         "fedasync": "FedAsync (alpha 0.5, concurrency 20, s = 1/sqrt(1+tau))"}
rows = [f"| strategy | virtual s to test acc {target} (seeds 1/2/3) | median | speed-up vs sync | "
        "final test acc (median) | virtual s at the end (median) | updates aggregated (median) | stale (median) |",
        "|---|---|---|---|---|---|---|---|"]
base = None
for s in ("sync", "sync_deadline", "fedbuff", "fedasync"):
    times, finals, ends, stale, aggregated = [], [], [], [], []
    for seed in (1, 2, 3):
        d = f"{work}/{s}-{seed}"
        hit = None
        for r in csv.DictReader(open(d + "/metrics.csv")):
            if r["test_acc"] and float(r["test_acc"]) >= target:
                hit = float(r["t"])
                break
        times.append(hit)
        sm = json.load(open(d + "/summary.json"))
        finals.append(sm["final"]["global"]["test_acc"])
        ends.append(sm["t_end"])
        stale.append(sm["updates_stale"])
        aggregated.append(sm["updates_aggregated"])
    reached = [t for t in times if t is not None]
    med = statistics.median(reached) if len(reached) == 3 else None
    if s == "sync":
        base = med
    ratio = f"{base / med:.1f}x" if med and base and s != "sync" else "-"
    show = " / ".join("not reached" if t is None else f"{t:.0f}" for t in times)
    med_text = "-" if med is None else f"{med:.0f}"
    rows.append(f"| {names[s]} | {show} | {med_text} | {ratio} | {statistics.median(finals):.3f} | "
                f"{statistics.median(ends):.0f} | {statistics.median(aggregated):.0f} | "
                f"{statistics.median(stale):.0f} |")
table = "\n".join(rows)
print(table)
text = open(readme).read()
begin, end = "<!-- ASYNC-TABLE:BEGIN -->", "<!-- ASYNC-TABLE:END -->"
if begin in text and end in text:
    text = text[:text.index(begin) + len(begin)] + "\n" + table + "\n" + text[text.index(end):]
    open(readme, "w").write(text)
PY
