#!/usr/bin/env bash
# compute.* from the command line (docs/scenarios.md, "Devices"): auto on a
# machine without a GPU runs on the CPU with one info line and gives the
# same events as cpu; explicit cuda without a GPU and f16 on the CPU exit 2
# saying why; update events name their device; bf16 trains on the CPU; paged sessions train bit for bit as resident ones;
# workers_per_device makes devices x N workers.
# usage: devices_test.sh <fedsp binary> <source dir>
set -uo pipefail
fedsp=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$src/tests/integration/checks.sh"
tiny=$src/tests/integration/tiny.yaml
strip() { sed -E 's/,"wall_[a-z_]+":[-0-9.e+]+//g' "$1"; }

"$fedsp" run "$tiny" --set compute.device=cpu --out "$tmp/cpu" --quiet >/dev/null 2>&1
"$fedsp" run "$tiny" --set compute.device=auto --out "$tmp/auto" --quiet >/dev/null 2>&1
check "device auto gives the same events as device cpu (less wall_* fields)" \
  cmp -s <(strip "$tmp/cpu/events.jsonl") <(strip "$tmp/auto/events.jsonl")
check "the prepared event says which devices the run computes on" \
  grep -q '"type":"prepared".*"devices":\["cpu"\]' "$tmp/auto/events.jsonl"
check "summary.json records the request, the devices and the fallback" node -e '
const s=JSON.parse(require("fs").readFileSync(process.argv[1],"utf-8")).compute;
process.exit(s.requested==="auto" && s.devices.join()==="cpu" && /running on the CPU/.test(s.note) ? 0 : 1);' "$tmp/auto/summary.json"
if grep -q "running on the CPU" "$tmp/auto/fedsp.log"; then
  check "auto's fallback is one info line" bash -c "[[ \$(grep -c 'running on the CPU' '$tmp/auto/fedsp.log') == 1 ]]"
  check "cuda without a GPU exits 2 naming the key and what torch reports" expect_fail 2 \
    "key 'compute.device' is 'cuda': no CUDA device" "$fedsp" run "$tiny" --set compute.device=cuda --out "$tmp/x"
fi
check "a malformed device names file, line and key" expect_fail 2 \
  "tiny.yaml, --set 'compute.device=gpu0': key 'compute.device' must be auto, cpu, cuda" \
  "$fedsp" run "$tiny" --set compute.device=gpu0 --out "$tmp/x"
check "every update event names the device its task ran on and the transfer time" bash -c "
  n=\$(grep -c '\"type\":\"update\"' '$tmp/cpu/events.jsonl')
  m=\$(grep -c '\"type\":\"update\".*\"device\":\"cpu\".*\"wall_transfer_s\":' '$tmp/cpu/events.jsonl')
  [[ \$n -gt 0 && \$n == \$m ]]"
check "f16 on the CPU exits 2 naming the key and the reason" expect_fail 2 \
  "compute.dtype' is f16 on the CPU: libtorch's CPU autocast has no float16 kernels" \
  "$fedsp" run "$tiny" --set compute.dtype=f16 --out "$tmp/x"
# bf16 on the CPU: the families' llama scenario trains under autocast; its
# clients' losses fall as in float32, and summary.json says bf16.
llama=$src/scenarios/families/llama.yaml
"$fedsp" run "$llama" --set compute.device=cpu --set compute.dtype=bf16 --out "$tmp/bf16" --quiet >/dev/null 2>&1
check "a bf16 run on the CPU completes and summary.json says bf16" node -e '
const s=JSON.parse(require("fs").readFileSync(process.argv[1],"utf-8"));
process.exit(s.compute.dtype==="bf16" ? 0 : 1);' "$tmp/bf16/summary.json"
check "under bf16 every client task lowers its local loss" node -e '
const ev=require("fs").readFileSync(process.argv[1],"utf-8").trim().split("\n").map(JSON.parse)
  .filter(e=>e.type==="update");
process.exit(ev.length>0 && ev.every(e=>e.loss_after<e.loss_before) ? 0 : 1);' "$tmp/bf16/events.jsonl"
# Paging: the families' llama scenario has 3 clients, 2 rounds, one worker.
# A session is built with its parameters only (about 95 KB) and its first
# task grows it fourfold (gradients, AdamW moments: 382,464 bytes); a budget
# of 500 KB holds one grown session and no two. What is exact whatever the
# order: every session starts resident (3), each page-in adds one and each
# eviction takes one, and one grown session is left at the end, so
# evictions = page-ins + 2; round 2's three tasks go through room for one
# grown session, so at least two of them page theirs in. The exact counts
# depend on whether the third session is built before the first task grows
# (5 page-ins and 7 evictions, or 4 and 6: both seen, 2026-12-03).
# Training is bit for bit the same, so the events are.
"$fedsp" run "$llama" --set compute.device=cpu --out "$tmp/resident" --quiet >/dev/null 2>&1
"$fedsp" run "$llama" --set compute.device=cpu --set compute.device_memory_gb=0.0005 \
  --out "$tmp/paged" --quiet >/dev/null 2>&1
check "sessions paged out and back train to the same events as resident ones" \
  cmp -s <(strip "$tmp/resident/events.jsonl") <(strip "$tmp/paged/events.jsonl")
check "summary.json counts the paging: evictions = page-ins + 2, at least 2 page-ins, none over budget" node -e '
const p=JSON.parse(require("fs").readFileSync(process.argv[1],"utf-8")).compute.paging;
process.exit(p.page_ins>=2 && p.evictions===p.page_ins+2 && p.over_budget===0 ? 0 : 1);' "$tmp/paged/summary.json"
# Prefetch (compute.prefetch, on by default): a budget of 800 KB holds two
# grown sessions, so while one task trains on the single worker the session
# of the task queued behind it can come back ahead of it. Each task takes
# tens of milliseconds here, far longer than the pager's thread needs to
# start. Prefetched or not, training is bit for bit the same.
"$fedsp" run "$llama" --set compute.device=cpu --set compute.device_memory_gb=0.0008 \
  --out "$tmp/prefetch" --quiet >/dev/null 2>&1
"$fedsp" run "$llama" --set compute.device=cpu --set compute.device_memory_gb=0.0008 \
  --set compute.prefetch=false --out "$tmp/noprefetch" --quiet >/dev/null 2>&1
check "prefetched sessions train to the same events as resident ones" \
  cmp -s <(strip "$tmp/resident/events.jsonl") <(strip "$tmp/prefetch/events.jsonl")
check "summary.json counts sessions brought back ahead of their task, and none with prefetch off" node -e '
const p=f=>JSON.parse(require("fs").readFileSync(f,"utf-8")).compute.paging;
const on=p(process.argv[1]), off=p(process.argv[2]);
process.exit(on.prefetched>=1 && on.prefetched<=on.page_ins && off.prefetched===0 && off.page_ins>=1 ? 0 : 1);' \
  "$tmp/prefetch/summary.json" "$tmp/noprefetch/summary.json"
# Shared frozen bodies: with training.model_steps 0 the client sessions
# share one body (compute.share_frozen_body, on by default); off, each has
# its own. Training is the same either way, and with two workers running
# sessions through the shared body at once.
"$fedsp" run "$llama" --set compute.device=cpu --set training.model_steps=0 \
  --out "$tmp/shared" --quiet >/dev/null 2>&1
"$fedsp" run "$llama" --set compute.device=cpu --set training.model_steps=0 \
  --set compute.share_frozen_body=false --out "$tmp/own" --quiet >/dev/null 2>&1
"$fedsp" run "$llama" --set compute.device=cpu --set training.model_steps=0 \
  --set compute.workers=2 --out "$tmp/shared2" --quiet >/dev/null 2>&1
check "the runs with a frozen body completed" \
  bash -c 'for f; do grep -q "\"type\":\"publish\"" "$f" || exit 1; done' _ \
  "$tmp/shared/events.jsonl" "$tmp/own/events.jsonl" "$tmp/shared2/events.jsonl"
check "sessions sharing a frozen body train to the same events as sessions with their own" \
  cmp -s <(strip "$tmp/shared/events.jsonl") <(strip "$tmp/own/events.jsonl")
check "... and with two workers training through the shared body at once" \
  cmp -s <(strip "$tmp/shared/events.jsonl") <(strip "$tmp/shared2/events.jsonl")
check "a share_frozen_body that is not a boolean names the key" expect_fail 2 \
  "share_frozen_body" "$fedsp" run "$tiny" --set compute.share_frozen_body=maybe --out "$tmp/x"
check "workers and workers_per_device together are refused" expect_fail 2 \
  "'compute.workers' and 'compute.workers_per_device' both set" \
  "$fedsp" run "$tiny" --set compute.workers=2 --set compute.workers_per_device=2 --out "$tmp/x"
"$fedsp" run "$tiny" --set compute.device=cpu --set compute.workers_per_device=3 --out "$tmp/w" --quiet >/dev/null 2>&1
check "workers_per_device 3 on the CPU makes 3 workers (summary.json)" \
  grep -q '"worker_devices": *\[ *"cpu", *"cpu", *"cpu" *\]' "$tmp/w/summary.json"
echo "$passes passed, $failures failed"
[[ $failures -eq 0 ]]
