#!/usr/bin/env bash
# Across processes on loopback (docs/network.md): fedsp serve plus two
# fedsp join processes finish scenarios/distributed.yaml like the standalone
# run; a join process killed with SIGKILL mid-run does not stop the run, and
# a restarted one gets its clients back; a wrong token and a plain-text node
# are refused.
# usage: network_test.sh <fedsp binary> <source dir>
set -uo pipefail
fedsp=$1
src=$2
scenario=$src/scenarios/distributed.yaml
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$tmp"; }
trap cleanup EXIT
failures=0
check() {
  local what=$1; shift
  if "$@"; then echo "ok   - $what"; else echo "FAIL - $what"; failures=$((failures + 1)); fi
}
port=$((20000 + RANDOM % 20000))
"$fedsp" certs --out "$tmp/certs" >/dev/null || { echo "FAIL - fedsp certs"; exit 1; }
"$fedsp" certs --out "$tmp/other" >/dev/null
acc() { grep -o '"final":{"global":{"test_acc":[0-9.]*' "$1/summary.json" | grep -o '[0-9.]*$'; }
join() { # join <range> <out> [extra...], run in the background: the job's pid is fedsp's
  local range=$1 out=$2; shift 2
  exec "$fedsp" join --server 127.0.0.1:$port --certs "$tmp/certs" --token-file "$tmp/certs/token" \
    --clients "$range" --out "$out" --quiet "$@"
}

# 1. serve + two joins, against the standalone run of the same seed.
"$fedsp" run "$scenario" --out "$tmp/solo" --quiet >/dev/null
"$fedsp" serve "$scenario" --listen 127.0.0.1:$port --certs "$tmp/certs" --out "$tmp/run" --quiet >"$tmp/serve.out" 2>&1 &
serve=$!; pids+=($serve)
join 0-3 "$tmp/j1" & j1=$!; pids+=($j1)
join 4-7 "$tmp/j2" & j2=$!; pids+=($j2)
wait $serve; s=$?
wait $j1; a=$?
wait $j2; b=$?
check "serve exits 0 with a summary" test $s -eq 0 -a -s "$tmp/run/summary.json"
check "both join processes exit 0 when the run ends" test $a -eq 0 -a $b -eq 0
check "the served run keeps the invariants" "$fedsp" check "$tmp/run"
check "the served run reaches the standalone run's accuracy band" \
  awk -v x="$(acc "$tmp/run")" -v y="$(acc "$tmp/solo")" 'BEGIN { d = x - y; exit !(x != "" && d < 0.05 && d > -0.05) }'
check "each node's clients joined from their node" bash -c "grep -c '\"type\":\"node_joined\"' '$tmp/run/events.jsonl' | grep -q '^2$'"

# 2. SIGKILL of one join mid-run; a restarted one rejoins.
port=$((port + 1))
slow=$tmp/slow.yaml
sed 's/rounds: 4/rounds: 10/' "$scenario" >"$slow"
"$fedsp" serve "$slow" --listen 127.0.0.1:$port --certs "$tmp/certs" --out "$tmp/run2" --quiet >"$tmp/serve2.out" 2>&1 &
serve=$!; pids+=($serve)
join 0-3 "$tmp/k1" & j1=$!; pids+=($j1)
join 4-7 "$tmp/k2" & j2=$!; pids+=($j2)
for i in $(seq 1 100); do grep -q '"type":"publish","t":[0-9.]*,"version":2' "$tmp/run2/events.jsonl" 2>/dev/null && break; sleep 0.2; done
kill -9 $j2; wait $j2 2>/dev/null
sleep 2
join 4-7 "$tmp/k3" & j3=$!; pids+=($j3)
wait $serve; s=$?
wait $j1; a=$?
wait $j3; c=$?
check "the run completes after a join process was killed" test $s -eq 0 -a -s "$tmp/run2/summary.json"
check "the killed node's clients were seen going down" bash -c "grep -q '\"type\":\"client_down\"' '$tmp/run2/events.jsonl'"
check "a restarted node gets its clients back" bash -c "test \$(grep -c '\"type\":\"node_joined\"' '$tmp/run2/events.jsonl') -ge 3 && test $c -eq 0"
check "the interrupted served run keeps the invariants" "$fedsp" check "$tmp/run2"

# 3. Refusals.
port=$((port + 1))
"$fedsp" serve "$scenario" --listen 127.0.0.1:$port --certs "$tmp/certs" --out "$tmp/run3" --quiet >/dev/null 2>&1 &
serve=$!; pids+=($serve)
echo "not-the-token" >"$tmp/bad-token"
"$fedsp" join --server 127.0.0.1:$port --certs "$tmp/certs" --token-file "$tmp/bad-token" --clients 0-3 --out "$tmp/bad" >"$tmp/bad.out" 2>&1
check "a wrong token is refused (exit 3, named)" bash -c "test $? -eq 3 && grep -q 'wrong join token' '$tmp/bad.out'"
"$fedsp" join --server 127.0.0.1:$port --insecure --clients 0-3 --out "$tmp/plain" --attempts 2 >"$tmp/plain.out" 2>&1
check "a plain-text node cannot talk to a TLS server (exit 1)" bash -c "test $? -eq 1 && grep -q 'handshake' '$tmp/plain.out'"
"$fedsp" join --server 127.0.0.1:$port --certs "$tmp/other" --token-file "$tmp/certs/token" --clients 0-3 --out "$tmp/ca" --attempts 2 >"$tmp/ca.out" 2>&1
check "a node with another CA's certificate is refused (exit 1)" bash -c "test $? -eq 1 && grep -q 'handshake' '$tmp/ca.out'"
: >"$tmp/empty-token"
check "an empty token file is refused before connecting" bash -c "'$fedsp' join --server 127.0.0.1:$port --certs '$tmp/certs' --token-file '$tmp/empty-token' --clients 0-3 2>&1 | grep -q 'is empty'"
check "a bad --listen is named" bash -c "'$fedsp' serve '$scenario' --listen localhost --certs '$tmp/certs' 2>&1 | grep -q 'is not HOST:PORT'"
check "serve without certificates says how to make them" bash -c "'$fedsp' serve '$scenario' --listen 127.0.0.1:1 --certs '$tmp/none' 2>&1 | grep -q 'fedsp certs'"
# A node that holds 4-7 speaks for client 1: refused and logged. (The
# benchmark binary doubles as such a node.)
probe=$(dirname "$fedsp")/bench/fedsp_netbench
if [[ -x $probe ]]; then
  "$probe" probe 127.0.0.1 $port "$(cat "$tmp/certs/token")" 4 7 1 --certs "$tmp/certs" >"$tmp/probe.out" 2>&1
  check "an update for another node's client is refused (wrong_client)" \
    bash -c "grep -q 'hello accepted' '$tmp/probe.out' && grep -q 'reason: wrong_client' '$tmp/probe.out' && grep -q 'not bound to the node' '$tmp/probe.out'"
  check "... and logged as a reject event" bash -c "grep '\"type\":\"reject\"' '$tmp/run3/events.jsonl' | grep -q 'not bound'"
  "$probe" probe 127.0.0.1 $port - 0 0 2 --certs "$tmp/certs" >"$tmp/probe2.out" 2>&1
  check "a node that never presented the token cannot speak for a client" grep -q 'reason: wrong_client' "$tmp/probe2.out"
else
  echo "SKIP - impersonation checks: no $probe (FEDSP_BUILD_BENCH off)"
fi
kill -9 $serve 2>/dev/null

echo "network: $failures failure(s)"
[[ $failures -eq 0 ]]
