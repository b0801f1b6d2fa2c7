#!/usr/bin/env bash
# Update throughput and latency between two processes on loopback, through
# CAF's middleman, with TLS (fedsp certs) and in plain text, for prompts of
# the quickstart's size (2 layers x 2 x 64 wide x 8 positions = 2,048
# floats), of the default mlp (9,610) and of gpt2-medium's (24 x 2 x 1024 x
# 40 = 1,966,080). The receiver decodes each Update in full and answers
# with an Ack, as the aggregator does.
#
#   bash bench/network.sh [BUILD_DIR]
set -euo pipefail
build=${1:-build}
bin=$build/bench/fedsp_netbench
work=$(mktemp -d /tmp/fedsp-netbench.XXXXXX)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
"$build/fedsp" certs --out "$work/certs" >/dev/null
port=$((30000 + RANDOM % 20000))
for mode in tls plain; do
  sec=(--certs "$work/certs"); [[ $mode == plain ]] && sec=(--insecure)
  port=$((port + 1))
  "$bin" serve $port "${sec[@]}" >/dev/null & pids+=($!)
  for floats in 2048 9610 1966080; do
    n=$(( floats > 100000 ? 40 : 2000 ))
    "$bin" send 127.0.0.1 $port $floats $n 1 "${sec[@]}"
    "$bin" send 127.0.0.1 $port $floats $n 16 "${sec[@]}"
  done
done
