#!/usr/bin/env bash
# Training-step time, tokens/s and peak RSS of fedsp's models (GPT-2, OPT,
# LLaMA-style) against the same models in PyTorch eager (Debian's
# python3-torch: same libtorch, same BLAS),
# for the global and the auxiliary model of each preset, alternating the two
# implementations so machine noise hits both. Prints a markdown table.
#
#   bench/train_step.sh [BUILD_DIR]      (needs: apt-get install python3-torch)
set -euo pipefail
build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
threads=$(nproc)
runs=(
  "tiny global 16 256 10"
  "tiny aux 16 256 10"
  "gpt2 global 1 128 3"
  "gpt2 aux 1 128 3"
  "opt-tiny global 16 256 10"
  "opt-tiny aux 16 256 10"
  "opt-125m global 1 128 3"
  "llama-tiny global 16 256 10"
  "llama-tiny aux 16 256 10"
  "smollm-135m global 1 128 3"
)
# ROWS="opt-tiny llama-tiny" keeps only the rows of those presets.
if [[ -n "${ROWS:-}" ]]; then
  keep=()
  for r in "${runs[@]}"; do
    for p in $ROWS; do [[ ${r%% *} == "$p" ]] && keep+=("$r"); done
  done
  runs=("${keep[@]}")
fi
echo "| preset | model | params | batch x seq | fedsp s/step | PyTorch s/step | fedsp/PyTorch | fedsp tokens/s | fedsp peak RSS MB | PyTorch peak RSS MB |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for r in "${runs[@]}"; do
  set -- $r
  f=$("$build/bench/fedsp_train_bench" "$@" "$threads")
  # The same thread configuration as fedsp's set_compute_threads: torch's own
  # threads, one OpenBLAS thread inside each (OPENBLAS_NUM_THREADS only; the
  # environment's other OpenBLAS settings stay as they are).
  p=$(OPENBLAS_NUM_THREADS=1 /usr/bin/python3 "$here/train_step_reference.py" "$@" "$threads")
  /usr/bin/python3 - "$f" "$p" <<'PY'
import json, sys
f, p = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"| {f['preset']} | {f['model']} | {f['params']:,} | {f['batch']} x {f['seq']} | "
      f"{f['median_s']:.3f} | {p['median_s']:.3f} | {f['median_s'] / p['median_s']:.2f} | "
      f"{f['tokens_per_s']:,.0f} | {f['peak_rss_mb']:.0f} | {p['peak_rss_mb']:.0f} |")
PY
done
