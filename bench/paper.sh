#!/usr/bin/env bash
# The FedSP comparison on SpamAssassin: every scenario of scenarios/paper/
# (one method each) with seeds 1, 2, 3, then a markdown table of the global
# model's test accuracy (mean +- std), parameters, bytes per client per round
# and client compute per round, written into bench/README.md between the
# PAPER-TABLE markers and printed.
#
#   bash bench/paper.sh [BUILD_DIR]       (after make prepared)
set -euo pipefail
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/runs/paper"
mkdir -p "$out"
for m in zeroshot fedsp fedprompt fedprompt_single local centralized fedsp_server_only; do
  for seed in 1 2 3; do
    dir="$out/$m-$seed"
    if [[ ! -f "$dir/summary.json" ]]; then
      echo "running $m seed $seed" >&2
      "$build/fedsp" run "$root/scenarios/paper/$m.yaml" --seed "$seed" --out "$dir" --quiet >/dev/null
    fi
  done
done
python3 - "$out" "$root/bench/README.md" <<'PY'
import json, os, statistics, sys
out, readme = sys.argv[1], sys.argv[2]
names = {"zeroshot": "Zero-shot", "fedsp": "FedSP", "fedprompt": "FedPrompt",
         "fedprompt_single": "FedPrompt-Single", "local": "Local-only (mean over clients)",
         "centralized": "Centralised (upper bound)",
         "fedsp_server_only": "FedSP, server step only (ablation)"}
rows = ["| method | test acc | test acc_norm | test loss | aux test acc | model at the clients (params) | "
        "model bytes to each client (once) | bytes to each client / round | "
        "bytes from each client / round | client GFLOP / round (est.) | client s / round |",
        "|---|---|---|---|---|---|---|---|---|---|---|"]
def ms(xs, fmt="{:.3f}"):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "-"
    if len(xs) == 1:
        return fmt.format(xs[0])
    return (fmt + " ± " + fmt).format(statistics.mean(xs), statistics.stdev(xs))
for m in ["zeroshot", "fedsp", "fedprompt", "fedprompt_single", "local", "centralized",
          "fedsp_server_only"]:
    runs = []
    for seed in (1, 2, 3):
        with open(os.path.join(out, f"{m}-{seed}", "summary.json")) as f:
            runs.append(json.load(f))
    acc = [r["final"]["global"]["test_acc"] for r in runs]
    accn = [r["final"]["global"]["test_acc_norm"] for r in runs]
    loss = [r["final"]["global"].get("test_loss") for r in runs]
    aux = [r["final"].get("aux", {}).get("test_acc") for r in runs]
    p = runs[0]["parameters"]
    model = ("auxiliary {:,}".format(p["auxiliary"]) if p["auxiliary"] else
             "global {:,}".format(p["global"]) if m not in ("zeroshot",) else "none")
    rounds = max(1, runs[0]["rounds"])
    down, up, gflop, secs, shipped = [], [], [], [], []
    for r in runs:
        t = r["traffic"].values()
        shipped.append(statistics.mean(x["model_bytes_received"] for x in t))
        if r["rounds"]:
            down.append(statistics.mean(x["bytes_received"] for x in t) / rounds)
            up.append(statistics.mean(x["bytes_sent"] for x in t) / rounds)
        pr = [x for x in r["per_round"] if "client_flops" in x]
        if pr:
            gflop.append(statistics.mean(x["client_flops"] for x in pr) / 1e9)
            secs.append(statistics.mean(x["client_seconds"] for x in pr))
    rows.append(f"| {names[m]} | {ms(acc)} | {ms(accn)} | {ms(loss, '{:.2f}')} | {ms(aux)} | {model} | "
                f"{statistics.mean(shipped):,.0f} | {ms(down, '{:,.0f}')} | {ms(up, '{:,.0f}')} | {ms(gflop, '{:.2f}')} | "
                f"{ms(secs, '{:.2f}')} |")
table = "\n".join(rows)
print(table)
text = open(readme).read()
begin, end = "<!-- PAPER-TABLE:BEGIN -->", "<!-- PAPER-TABLE:END -->"
if begin in text and end in text:
    text = text[:text.index(begin) + len(begin)] + "\n" + table + "\n" + text[text.index(end):]
    open(readme, "w").write(text)
PY
