#!/usr/bin/env bash
# Before a visit to a GPU machine that has CUDA, cmake, ninja, g++ and a
# Python with CUDA torch but no package registry: downloads, here, the
# Debian 12 packages fedsp builds against besides torch, into .device-debs/
# (ignored by git). scripts/device-check.sh unpacks them into a prefix there.
#
#   scripts/fetch-device-debs.sh        (needs apt-get and Debian's archive)
#
# Runtime libraries come with their -dev packages (OpenSSL's too: without
# libssl3 the prefix's libssl.so dangles and the static libssl.a clashes
# with network.cpp's wrappers); libc and libstdc++ are the GPU machine's (a
# Debian 12 build needs glibc >= 2.36 there: device-check.sh checks).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/.device-debs"
packages=(
  libcaf-dev libcaf-core0.17 libcaf-io0.17 libcaf-openssl0.17
  libcapnp-dev libcapnp-0.9.2 capnproto
  libspdlog-dev libspdlog1.10 libfmt-dev libfmt9
  libyaml-cpp-dev libyaml-cpp0.7
  libgtest-dev googletest librapidcheck-dev
  libbenchmark-dev libbenchmark1debian
  nlohmann-json3-dev
  libicu-dev libicu72
  libssl-dev libssl3
)
mkdir -p "$dest"
cd "$dest"
apt-get download "${packages[@]}" >/dev/null
ls -1 *.deb >MANIFEST
echo "fetch-device-debs: $(wc -l <MANIFEST) packages, $(du -sh . | cut -f1) in .device-debs/"
