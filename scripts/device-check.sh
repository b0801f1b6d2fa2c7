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
#   4. the training-step benchmark on the device (when the GPU path exists).
# On a machine without CUDA (as tried here) steps 1-3 run on the CPU.
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
  cmake -S "$root" -B "$root/build-device" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$prefix/usr;$prefix/usr/lib/x86_64-linux-gnu/cmake" \
    -DCMAKE_MODULE_PATH="$root/cmake" -DCAF_ROOT_DIR="$prefix/usr" \
    -DICU_ROOT="$prefix/usr" -DTorch_DIR="$tdir" -DFEDSP_BUILD_BENCH=ON
}
build() { cmake --build "$root/build-device" -j"$(nproc)"; }
tests() {
  export LD_LIBRARY_PATH="$prefix/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
  # the device tests (devices.* in fedsp_models_tests, cli.devices) and
  # whatever carries the gpu label
  (cd "$root/build-device" && ctest -R '^devices\.|^cli\.devices$' --output-on-failure \
     && ctest -L gpu --output-on-failure --no-tests=ignore)
}

step glibc glibc
step unpack unpack || { echo "unpack failed: see $out/unpack.log"; exit 1; }
step configure configure || { echo "configure failed: see $out/configure.log"; exit 1; }
step build build || { echo "build failed: see $out/build.log"; exit 1; }
step tests tests
nvidia-smi >"$out/nvidia-smi.txt" 2>&1 || echo "no nvidia-smi" >>"$summary"
echo "outputs in $out"
