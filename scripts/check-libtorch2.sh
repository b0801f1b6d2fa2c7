#!/usr/bin/env bash
# Compiles every translation unit that includes torch (models/, the model
# tests, the torch benchmarks) against libtorch 2.x headers: Debian trixie's
# libtorch-dev, fetched with apt-get into an ignored folder with a private apt
# state (the machine's own sources and packages are not touched). It checks
# that models/torch_compat.hpp covers the API differences between Debian 12's
# libtorch 1.13 and 2.x; it does not link or run (trixie's libraries need a
# newer glibc than Debian 12's). docs/architecture.md, "Devices".
#
#   scripts/check-libtorch2.sh [BUILD_DIR]     (after make prepared: the
#                                               generated Cap'n Proto headers)
# Needs Debian's archive (deb.debian.org) and g++. Prints one line per file
# and exits 1 if any fails; the compiler's messages are in .libtorch2/logs/.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd) || { echo "no build folder: run make prepared" >&2; exit 2; }
work="$root/.libtorch2"
suite=${LIBTORCH2_SUITE:-trixie}
mkdir -p "$work"/{etc,state/lists/partial,cache/archives/partial,debs,logs}
prefix="$work/prefix"
if [[ ! -d "$prefix/usr/include/torch" ]]; then
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $suite main" \
    >"$work/etc/sources.list"
  apt_opts=(-o Dir::Etc::sourcelist="$work/etc/sources.list" -o Dir::Etc::sourceparts=-
            -o Dir::State="$work/state" -o Dir::Cache="$work/cache" -o Debug::NoLocking=1)
  apt-get "${apt_opts[@]}" update -qq || { echo "apt-get update for $suite failed" >&2; exit 2; }
  (cd "$work/debs" && apt-get "${apt_opts[@]}" download libtorch-dev) \
    || { echo "apt-get download libtorch-dev ($suite) failed" >&2; exit 2; }
  rm -rf "$prefix" && mkdir -p "$prefix"
  for deb in "$work"/debs/*.deb; do dpkg-deb -x "$deb" "$prefix"; done
fi
version=$(sed -n 's/^#define TORCH_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\).*/\2/p' \
          "$prefix/usr/include/torch/csrc/api/include/torch/version.h" | paste -sd.)
echo "libtorch headers: $version ($suite, $prefix)"
cd "$root"
files=(models/*.cpp)
for f in tests/models/*.cpp bench/*.cpp; do
  grep -q 'torch\|"models/' "$f" && files+=("$f")
done
# g++ reads the flags from a response file, so that each parallel job gets
# them unchanged (the two path macros are string literals).
printf '%s\n' "-std=c++17 -fsyntax-only -w -D_GLIBCXX_USE_CXX11_ABI=1" \
  "-DFEDSP_SOURCE_DIR=\\\"$root\\\" -DFEDSP_DATA_DIR=\\\"$root/data\\\"" \
  "-I$root -I$build -isystem $prefix/usr/include" \
  "-isystem $prefix/usr/include/torch/csrc/api/include" >"$work/flags.rsp"
export root work
results=$(printf '%s\n' "${files[@]}" | xargs -P "${JOBS:-$(nproc)}" -I{} bash -c \
  'log="$work/logs/$(echo {} | tr / _).log"
   if (cd "$root" && g++ @"$work/flags.rsp" {}) >"$log" 2>&1; then echo "ok    {}"; else echo "FAIL  {} ($log)"; fi')
sort -k2 <<<"$results"
failed=$(grep -c '^FAIL' <<<"$results")
echo "check-libtorch2: ${#files[@]} files, $failed failed"
[[ $failed == 0 ]]
