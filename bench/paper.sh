#!/usr/bin/env bash
# The FedSP comparison on SpamAssassin: every scenario of scenarios/paper/
# (one method each; 4 clients, 20 rounds) with seeds 1, 2, 3 (Local-only:
# seed 1 only, it scores every client's prompts), then
#  - a markdown table of the global model's final test accuracy (mean +- sd),
#    parameters, traffic and client compute, written into bench/README.md
#    between the PAPER-TABLE markers and printed;
#  - bench/paper.svg, test accuracy against round for every method (mean and
#    a band from the lowest to the highest seed), drawn by `fedsp compare`.
# Runs already in runs/paper/ are kept (delete the folder to start over).
#
#   bash bench/paper.sh [BUILD_DIR]       (after make prepared)
set -euo pipefail
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/runs/paper"
mkdir -p "$out"
methods=(zeroshot fedsp fedprompt fedprompt_single centralized fedsp_server_only local)
seeds_of() { [[ $1 == local ]] && echo 1 || echo 1 2 3; }
start=$(date +%s)
for m in "${methods[@]}"; do
  for seed in $(seeds_of "$m"); do
    dir="$out/$m-$seed"
    if [[ ! -f "$dir/summary.json" ]]; then
      t0=$(date +%s)
      "$build/fedsp" run "$root/scenarios/paper/$m.yaml" --seed "$seed" --out "$dir" --quiet >/dev/null
      echo "$m seed $seed: $(( $(date +%s) - t0 )) s" | tee -a "$out/times.txt" >&2
    fi
  done
done
echo "all runs: $(( $(date +%s) - start )) s this time (times.txt has every run's)" >&2
label() {
  case $1 in
    zeroshot) echo "Zero-shot" ;; fedsp) echo "FedSP" ;; fedprompt) echo "FedPrompt" ;;
    fedprompt_single) echo "FedPrompt-Single" ;; centralized) echo "Centralised" ;;
    fedsp_server_only) echo "FedSP, server step only" ;; local) echo "Local-only (client mean)" ;;
  esac
}
args=()
for m in "${methods[@]}"; do
  dirs=""
  for seed in $(seeds_of "$m"); do dirs+="${dirs:+,}$out/$m-$seed"; done
  args+=("$(label "$m")=$dirs")
done
"$build/fedsp" compare --out "$root/bench/paper.svg" \
  --title "SpamAssassin, 4 clients: global model's test accuracy (400 e-mails)" "${args[@]}"
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
    for seed in ((1,) if m == "local" else (1, 2, 3)):
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
