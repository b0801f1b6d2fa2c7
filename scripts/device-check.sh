#!/usr/bin/env bash
# The device check: run on a machine with an NVIDIA GPU, a Python with CUDA
# torch, cmake, ninja and g++, but no package registry (the device tool's
# machine: DEVELOPERS.md). Before the visit, run scripts/fetch-device-debs.sh
# here and carry .device-debs/. Writes everything to $OUT (default
# device-out/): the build log, the GPU tests, the benchmarks, a summary.
#
#   OUT=/some/dir scripts/device-check.sh
#
# Steps, each timed in $OUT/summary.txt:
#   1. unpack .device-debs/*.deb into .device-prefix/ (dpkg-deb -x);
#   2. configure with the CUDA libtorch of that Python
#      (torch.utils.cmake_prefix_path) and the prefix; build with ninja;
#   3. the device tests (compute.device, paging; everywhere) and ctest -L gpu;
#   4. the benchmarks, into $OUT/benchmarks.md: the training step of gpt2 and
#      gpt2-xl, global and auxiliary, fedsp against PyTorch eager
#      (bench/train_step.sh with DEVICE=cuda, DTYPE, default bf16); two
#      FedSP rounds of 10 clients at GPT-2 XL's scale
#      (scenarios/gpu/fedsp-gpt2-xl.yaml); 40 clients paging through a 4 GB
#      budget, the same with prefetch off, and all resident
#      (scenarios/gpu/paging.yaml);
#      peak device memory of each by scripts/peak-device-mb.sh.
# On a machine without CUDA (as tried here) every step runs on the CPU, the
# benchmarks at toy sizes (the tiny preset; the scenarios shrunk to 2 layers
# of width 64 and a step or two), to try the steps, not to measure.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-$root/device-out}
mkdir -p "$out"
summary="$out/summary.txt"
: >"$summary"
python=${PYTHON:-python3}
step() { # step <name> <command...>: runs, times, records the status
  local name=$1; shift
  local start=$SECONDS
  "$@" >"$out/$name.log" 2>&1
  local rc=$?
  echo "$name: exit $rc, $((SECONDS - start)) s" | tee -a "$summary"
  return $rc
}

prefix="$root/.device-prefix"
bdir=${BUILD_DIR:-$root/build-device}
[[ $bdir == /* ]] || bdir="$PWD/$bdir"
unpack() {
  rm -rf "$prefix" && mkdir -p "$prefix"
  for deb in "$root"/.device-debs/*.deb; do dpkg-deb -x "$deb" "$prefix" || return 1; done
  # Debian's CMake and pkg-config files name /usr: point them at the prefix.
  grep -rl '/usr/' "$prefix/usr/lib" --include='*.cmake' --include='*.pc' 2>/dev/null \
    | xargs -r sed -i "s|\([\" =;]\)/usr/|\1$prefix/usr/|g"
  ls "$prefix/usr/include/caf" >/dev/null
}
glibc() { # Debian 12's libraries need glibc 2.36
  local v; v=$(ldd --version | head -n1 | grep -o '[0-9]\+\.[0-9]\+$')
  echo "glibc $v"; [[ $(printf '%s\n2.36\n' "$v" | sort -V | head -n1) == 2.36 ]]
}
torch_dir() { # TORCH_DIR overrides (a libtorch unpacked elsewhere; Debian's libtorch-dev here)
  if [[ -n "${TORCH_DIR:-}" ]]; then echo "$TORCH_DIR"; return; fi
  "$python" -c 'import torch, os; print(os.path.join(torch.utils.cmake_prefix_path, "Torch"))'
}
configure() {
  local tdir; tdir=$(torch_dir) || return 1
  "$python" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())' || true
  echo "Torch_DIR $tdir"
  cmake -S "$root" -B "$bdir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$prefix/usr;$prefix/usr/lib/x86_64-linux-gnu/cmake" \
    -DCMAKE_MODULE_PATH="$root/cmake" -DCAF_ROOT_DIR="$prefix/usr" \
    -DICU_ROOT="$prefix/usr" -DTorch_DIR="$tdir" -DFEDSP_BUILD_BENCH=ON
}
build() { cmake --build "$bdir" -j"$(nproc)"; }
tests() {
  export LD_LIBRARY_PATH="$prefix/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
  # the device tests (devices.* in fedsp_models_tests, cli.devices) and
  # whatever carries the gpu label
  (cd "$bdir" && ctest -R '^devices\.|^cli\.devices$' --output-on-failure \
     && ctest -L gpu --output-on-failure --no-tests=ignore)
}

benchmarks() {
  export LD_LIBRARY_PATH="$prefix/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
  local fedsp="$bdir/fedsp" runs="$out/runs" device=cuda dtype=${DTYPE:-bf16}
  local small=()
  if ! "$python" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    device=cpu dtype=f32
    small=(--set compute.device=cpu --set compute.dtype=f32 --set model.layers=2 --set model.width=64
           --set model.heads=4 --set model.context=64 --set clients.count=6
           --set compute.device_memory_gb=0.15 --set training.batch_size=2
           --set training.prompt_steps=1 --set training.model_steps=1 --set eval.max_examples=8
           --set method.distill_steps=2 --set method.server_steps=1 --set federation.rounds=2)
  fi
  mkdir -p "$runs"
  {
    echo "# Benchmarks on $(hostname), $(date -u +%Y-%m-%d), device $device, dtype $dtype"
    echo
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
    echo
    echo "## Training step (bench/train_step.sh)"
    echo
    if [[ $device == cpu ]]; then
      DEVICE=cpu DTYPE=f32 PYTHON=$python ROWS=tiny bash "$root/bench/train_step.sh" "$bdir"
    else
      DEVICE=$device DTYPE=$dtype PYTHON=$python bash "$root/bench/train_step.sh" "$bdir"
    fi
    echo
    echo "## FedSP rounds and paging (scenarios/gpu/)"
    echo
    DEVICE=$device "$root/scripts/peak-device-mb.sh" "$runs/xl.peak" "$fedsp" run \
      "$root/scenarios/gpu/fedsp-gpt2-xl.yaml" --out "$runs/xl" --overwrite --quiet "${small[@]}" >/dev/null
    DEVICE=$device "$root/scripts/peak-device-mb.sh" "$runs/paging.peak" "$fedsp" run \
      "$root/scenarios/gpu/paging.yaml" --out "$runs/paging" --overwrite --quiet "${small[@]}" >/dev/null
    DEVICE=$device "$root/scripts/peak-device-mb.sh" "$runs/noprefetch.peak" "$fedsp" run \
      "$root/scenarios/gpu/paging.yaml" --out "$runs/noprefetch" --overwrite --quiet "${small[@]}" \
      --set compute.prefetch=false >/dev/null
    DEVICE=$device "$root/scripts/peak-device-mb.sh" "$runs/resident.peak" "$fedsp" run \
      "$root/scenarios/gpu/paging.yaml" --out "$runs/resident" --overwrite --quiet "${small[@]}" \
      --set compute.device_memory_gb=0 >/dev/null
    python3 "$root/bench/device_runs.py" "fedsp-gpt2-xl=$runs/xl:$runs/xl.peak" \
      "paging=$runs/paging:$runs/paging.peak" \
      "paging, prefetch off=$runs/noprefetch:$runs/noprefetch.peak" \
      "all resident=$runs/resident:$runs/resident.peak"
  } >"$out/benchmarks.md"
}

# STEPS picks steps (default: all, in order); BUILD_DIR another build, for
# trying the benchmarks against an existing one:
#   BUILD_DIR=build STEPS=benchmarks scripts/device-check.sh
steps=" ${STEPS:-glibc unpack configure build tests benchmarks} "
want() { [[ $steps == *" $1 "* ]]; }
want glibc && step glibc glibc
want unpack && { step unpack unpack || { echo "unpack failed: see $out/unpack.log"; exit 1; }; }
want configure && { step configure configure || { echo "configure failed: see $out/configure.log"; exit 1; }; }
want build && { step build build || { echo "build failed: see $out/build.log"; exit 1; }; }
want tests && step tests tests
want benchmarks && step benchmarks benchmarks
nvidia-smi >"$out/nvidia-smi.txt" 2>&1 || echo "no nvidia-smi" >>"$summary"
echo "outputs in $out"
