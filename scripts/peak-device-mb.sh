#!/usr/bin/env bash
# peak-device-mb.sh FILE COMMAND...: runs COMMAND (stdout and exit status
# are its own) and writes to FILE its peak device memory in MB: nvidia-smi's
# memory.used on the device named by $DEVICE (cuda or cuda:N; default 0),
# sampled every 50 ms while it runs, less what was in use before it started.
# Without nvidia-smi, or with DEVICE=cpu, FILE gets "-". The same method for
# fedsp and for PyTorch, so their figures compare (bench/train_step.sh,
# scripts/device-check.sh).
file=$1; shift
device=${DEVICE:-cuda}
if [[ $device == cpu ]] || ! command -v nvidia-smi >/dev/null; then
  echo "-" >"$file"; exec "$@"
fi
index=${device#cuda}; index=${index#:}; index=${index:-0}
query=(nvidia-smi -i "$index" --query-gpu=memory.used --format=csv,noheader,nounits)
base=$("${query[@]}")
"${query[@]}" -lms 50 >"$file.samples" &
sampler=$!
"$@"
rc=$?
kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null
sort -n "$file.samples" | tail -n1 | awk -v b="$base" '{print $1 - b}' >"$file"
rm -f "$file.samples"
exit $rc
