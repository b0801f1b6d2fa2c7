#!/usr/bin/env bash
# Training-step time, tokens/s and peak RSS of fedsp's models (GPT-2, OPT,
# LLaMA-style) against the same models in PyTorch eager (Debian's
# python3-torch: same libtorch, same BLAS),
# for the global and the auxiliary model of each preset, alternating the two
# implementations so machine noise hits both. Prints a markdown table.
#
#   bench/train_step.sh [BUILD_DIR]      (needs: apt-get install python3-torch)
#
# On a GPU (scripts/device-check.sh runs it so):
#   DEVICE=cuda DTYPE=f32|bf16|f16 PYTHON=python3 bench/train_step.sh BUILD_DIR
# times gpt2 and gpt2-xl, global and auxiliary, on the device with that
# compute.dtype, both implementations synchronising after each step, and adds
# each one's peak device memory (nvidia-smi's memory.used, sampled every
# 50 ms while it runs, less what was used before it started).
set -euo pipefail
build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
threads=$(nproc)
device=${DEVICE:-cpu}
dtype=${DTYPE:-f32}
python=${PYTHON:-/usr/bin/python3}
if [[ $device != cpu ]]; then
  runs=(
    "gpt2 global 8 512 10"
    "gpt2 aux 8 512 10"
    "gpt2-xl global 4 512 5"
    "gpt2-xl aux 4 512 5"
  )
else
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
fi
# ROWS="opt-tiny llama-tiny" keeps only the rows of those presets.
if [[ -n "${ROWS:-}" ]]; then
  keep=()
  for r in "${runs[@]}"; do
    for p in $ROWS; do [[ ${r%% *} == "$p" ]] && keep+=("$r"); done
  done
  runs=("${keep[@]}")
fi
peak_mb() { DEVICE=$device "$here/../scripts/peak-device-mb.sh" "$@"; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
echo "| preset | model | params | batch x seq | device, dtype | fedsp s/step | PyTorch s/step | fedsp/PyTorch | fedsp tokens/s | fedsp peak RSS MB | PyTorch peak RSS MB | fedsp peak device MB | PyTorch peak device MB |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for r in "${runs[@]}"; do
  set -- $r
  f=$(peak_mb "$tmp/f" "$build/bench/fedsp_train_bench" "$@" "$threads" "$device" "$dtype")
  # The same thread configuration as fedsp's set_compute_threads: torch's own
  # threads, one OpenBLAS thread inside each (OPENBLAS_NUM_THREADS only; the
  # environment's other OpenBLAS settings stay as they are).
  p=$(OPENBLAS_NUM_THREADS=1 peak_mb "$tmp/p" "$python" "$here/train_step_reference.py" "$@" "$threads" "$device" "$dtype")
  "$python" - "$f" "$p" "$(cat "$tmp/f")" "$(cat "$tmp/p")" <<'PY'
import json, sys
f, p = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"| {f['preset']} | {f['model']} | {f['params']:,} | {f['batch']} x {f['seq']} | "
      f"{f['device']}, {f['dtype']} | "
      f"{f['median_s']:.3f} | {p['median_s']:.3f} | {f['median_s'] / p['median_s']:.2f} | "
      f"{f['tokens_per_s']:,.0f} | {f['peak_rss_mb']:.0f} | {p['peak_rss_mb']:.0f} | "
      f"{sys.argv[3]} | {sys.argv[4]} |")
PY
done
