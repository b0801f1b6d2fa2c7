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
# Per-node certificates in the same CA: the first run uses them.
"$fedsp" certs --out "$tmp/certs" --nodes server,a,b >"$tmp/nodes.out" || echo "FAIL - fedsp certs --nodes"
check "certs --nodes keeps the CA and token, and makes a folder per node" \
  bash -c "grep -q 'kept the CA and token' '$tmp/nodes.out' && test -s '$tmp/certs/a/node.pem' -a -s '$tmp/certs/b/node.key' && cmp -s '$tmp/certs/token' '$tmp/certs/server/token'"
check "... signed by that CA, named for the node, without the CA's key" \
  bash -c "openssl verify -CAfile '$tmp/certs/ca.pem' '$tmp/certs/a/node.pem' >/dev/null && openssl x509 -in '$tmp/certs/b/node.pem' -noout -subject | grep -q 'CN *= *b' && test ! -e '$tmp/certs/a/ca.key'"
check "certs refuses a node name that is a path" bash -c "'$fedsp' certs --out '$tmp/certs' --nodes ../x 2>&1 | grep -q 'is not a node name'"
declare -A certs_for=() # which certificate folder a node uses (default: the shared pair)
acc() { grep -o '"final":{"global":{"test_acc":[0-9.]*' "$1/summary.json" | grep -o '[0-9.]*$'; }
join() { # join <range> <out> [extra...], run in the background: the job's pid is fedsp's
  local range=$1 out=$2; shift 2
  local certs=${certs_for[$range]:-$tmp/certs}
  exec "$fedsp" join --server 127.0.0.1:$port --certs "$certs" --token-file "$certs/token" \
    --clients "$range" --out "$out" --quiet "$@"
}
# start_run <scenario> <run-dir> <node-dir> [option...]: fedsp serve on the
# next port, and two join processes for clients 0-3 (with the options) and
# 4-7 (logs in <node-dir>-1 and -2); sets serve, j1 and j2 to their pids.
start_run() {
  port=$((port + 1))
  "$fedsp" serve "$1" --listen 127.0.0.1:$port --certs "${certs_for[server]:-$tmp/certs}" --out "$2" --quiet >"$2.out" 2>&1 &
  serve=$!; pids+=($serve)
  local nodes=$3; shift 3
  join 0-3 "$nodes-1" "$@" & j1=$!; pids+=($j1)
  join 4-7 "$nodes-2" & j2=$!; pids+=($j2)
}
# wait_for_version <run-dir> <v>: until version v is published (20 s at most).
wait_for_version() {
  for i in $(seq 1 100); do grep -q "\"type\":\"publish\",\"t\":[0-9.]*,\"version\":$2" "$1/events.jsonl" 2>/dev/null && return; sleep 0.2; done
}

# 1. serve + two joins, each with its own certificate, against the
#    standalone run of the same seed.
"$fedsp" run "$scenario" --out "$tmp/solo" --quiet >/dev/null
certs_for=([server]=$tmp/certs/server [0-3]=$tmp/certs/a [4-7]=$tmp/certs/b)
start_run "$scenario" "$tmp/run" "$tmp/j"
certs_for=()
wait $serve; s=$?
wait $j1; a=$?
wait $j2; b=$?
check "serve exits 0 with a summary" test $s -eq 0 -a -s "$tmp/run/summary.json"
check "... and says the run went on the real clock" grep -q 'on the real clock' "$tmp/run.out"
check "both join processes exit 0 when the run ends" test $a -eq 0 -a $b -eq 0
check "the served run keeps the invariants" "$fedsp" check "$tmp/run"
check "the served run reaches the standalone run's accuracy band" \
  awk -v x="$(acc "$tmp/run")" -v y="$(acc "$tmp/solo")" 'BEGIN { d = x - y; exit !(x != "" && d < 0.05 && d > -0.05) }'
# The same updates were folded in the same order of versions: the global
# test loss after every version matches the standalone run's (to 0.1%; the
# sum of a round's updates may be taken in another order).
same_losses() {
  awk -F, 'NR == FNR { if (FNR > 1) l[$1] = $6; next }
           FNR > 1 { n++; d = $6 - l[$1]; if (d < 0) d = -d; if (!($1 in l) || d > 0.001 * l[$1]) bad++ }
           END { exit !(n > 0 && bad == 0) }' "$1/metrics.csv" "$2/metrics.csv"
}
check "the served run's test loss follows the standalone run's at every version" same_losses "$tmp/solo" "$tmp/run"
check "... and falls (the run learns)" awk -F, 'NR == 2 { a = $6 } END { exit !($6 < a - 0.5) }' "$tmp/run/metrics.csv"
check "each node's clients joined from their node" bash -c "grep -c '\"type\":\"node_joined\"' '$tmp/run/events.jsonl' | grep -q '^2$'"

# 1b. Tasks that outlast the silence bound: only the clients' Heartbeats
#     (every silence_s / 4) keep them alive, and across machines the server
#     takes them only from the node each client is bound to.
{ sed 's/prompt_steps: 10/prompt_steps: 160/; s/rounds: 4/rounds: 2/; s/clock: real/clock: real\n  silence_s: 2/' "$scenario"; } >"$tmp/long-tasks.yaml"
start_run "$tmp/long-tasks.yaml" "$tmp/run8" "$tmp/h"
wait $serve; s=$?
wait $j1; a=$?
wait $j2; b=$?
check "tasks longer than the silence bound finish across processes (heartbeats accepted)" \
  bash -c "test $s -eq 0 -a $a -eq 0 -a $b -eq 0 && grep -q '\"updates_accepted\":16' '$tmp/run8/summary.json'"
check "... with no task lost and nothing refused" \
  bash -c "! grep -qE '\"type\":\"(task_failed|reject)\"' '$tmp/run8/events.jsonl'"

# 2. SIGKILL of one join mid-run; a restarted one rejoins.
slow=$tmp/slow.yaml
sed 's/rounds: 4/rounds: 10/' "$scenario" >"$slow"
# (20 rounds: the run must outlast the restarted node's start-up, about
# 1 s, with the other node's clients alone training a round in 0.5 s.)
sed 's/rounds: 4/rounds: 20/' "$scenario" >"$tmp/longer.yaml"
start_run "$tmp/longer.yaml" "$tmp/run2" "$tmp/k"
wait_for_version "$tmp/run2" 2
kill -9 $j2; wait $j2 2>/dev/null
join 4-7 "$tmp/k3" & j3=$!; pids+=($j3)
wait $serve; s=$?
wait $j1; a=$?
wait $j3; c=$?
check "the run completes after a join process was killed" test $s -eq 0 -a -s "$tmp/run2/summary.json"
check "the killed node's clients were seen going down" bash -c "grep -q '\"type\":\"client_down\"' '$tmp/run2/events.jsonl'"
# The other node's TLS connection is not disturbed: its clients stayed up
# and it never saw the server go (CAF 0.17's OpenSSL module used to drop it,
# actors/network.cpp).
check "the other node kept its connection" bash -c "! grep -q '\"type\":\"client_down\",\"t\":[0-9.]*,\"client\":[0-3],' '$tmp/run2/events.jsonl' && ! grep -q 'went away' '$tmp/k-1/fedsp.log'"
check "a restarted node gets its clients back" bash -c "test \$(grep -c '\"type\":\"node_joined\"' '$tmp/run2/events.jsonl') -eq 3 && test $c -eq 0"
check "... and they train again (an update of client 4-7 after the rejoin)" \
  awk '/"type":"node_joined"/ { n++ } n == 3 && /"type":"update",.*"client":[4-7],/ { found = 1 } END { exit !found }' "$tmp/run2/events.jsonl"
check "the interrupted served run keeps the invariants" "$fedsp" check "$tmp/run2"

# 3. SIGKILL of the server mid-run; 'fedsp resume' serves it again on the
#    same address; both join processes reconnect by themselves, get their
#    clients back and exit 0 when the run ends.
start_run "$slow" "$tmp/run4" "$tmp/r"
wait_for_version "$tmp/run4" 3
kill -9 $serve; wait $serve 2>/dev/null
check "the server was killed mid-run" test ! -e "$tmp/run4/summary.json"
sleep 1
"$fedsp" resume "$tmp/run4" --quiet >"$tmp/resume4.out" 2>&1 & serve=$!; pids+=($serve)
wait $serve; s=$?
wait $j1; a=$?
wait $j2; b=$?
check "the resumed server finishes the run (exit 0, summary)" test $s -eq 0 -a -s "$tmp/run4/summary.json"
check "both join processes reconnected and exit 0" test $a -eq 0 -a $b -eq 0
check "... each after seeing the server go away" bash -c "grep -q 'went away' '$tmp/r-1/fedsp.log' && grep -q 'went away' '$tmp/r-2/fedsp.log'"
check "both nodes joined the restarted server" bash -c "test \$(grep -c '\"type\":\"node_joined\"' '$tmp/run4/events.jsonl') -eq 4"
check "the resumed served run reaches its last version and keeps the invariants" \
  bash -c "'$fedsp' check '$tmp/run4' | grep -q 'last 10).*1 resume'"
# A node told to wait 1 s for a server that went away gives up (exit 1,
# saying so); the other node, with the default 300 s, keeps trying.
start_run "$scenario" "$tmp/run7" "$tmp/g" --reconnect-s 1
wait_for_version "$tmp/run7" 1
kill -9 $serve; wait $serve 2>/dev/null
t0=$SECONDS
wait $j1; a=$?
check "a node past its --reconnect-s gives up (exit 1) within seconds" \
  bash -c "test $a -eq 1 -a $((SECONDS - t0)) -le 10 && grep -q 'giving up' '$tmp/g-1/fedsp.log'"
check "... while a node with the default keeps trying" kill -0 $j2
kill -9 $j2; wait $j2 2>/dev/null
check "join refuses a bad --reconnect-s" \
  bash -c "'$fedsp' join --server 127.0.0.1:1 --insecure --clients 0-3 --reconnect-s soon 2>&1 | grep -q 'reconnect-s needs a number'"
cp -r "$tmp/solo" "$tmp/solo-cut" && rm "$tmp/solo-cut/summary.json"
"$fedsp" resume "$tmp/solo-cut" --listen 127.0.0.1:1 >"$tmp/cut.out" 2>&1
check "resume --listen on a run that was not served is refused" \
  bash -c "test $? -ne 0 && grep -q \"started with 'fedsp serve'\" '$tmp/cut.out'"

# 4. The server side's crash faults in a served run: the server restarts
#    in-process from disk, the aggregator from its log; the nodes stay.
crashy=$tmp/crashy.yaml
{ sed 's/rounds: 4/rounds: 6/' "$scenario"
  printf 'faults:\n  - kind: server_crash\n    at_version: 2\n    restart_after_s: 1\n  - kind: aggregator_crash\n    at_version: 4\n'; } >"$crashy"
start_run "$crashy" "$tmp/run5" "$tmp/c"
wait $serve; s=$?
wait $j1; a=$?
wait $j2; b=$?
check "a served run survives server_crash and aggregator_crash faults (all exit 0)" test $s -eq 0 -a $a -eq 0 -a $b -eq 0
check "... reaching its last version with both faults and one restart" \
  bash -c "'$fedsp' check '$tmp/run5' | grep -q 'last 6).* 2 fault(s) injected, 1 resume'"
{ cat "$scenario"; printf 'faults:\n  - kind: client_crash\n    at_version: 1\n    clients: [1]\n'; } >"$tmp/client-crash.yaml"
"$fedsp" serve "$tmp/client-crash.yaml" --listen 127.0.0.1:$port --certs "$tmp/certs" --out "$tmp/run6" >"$tmp/cc.out" 2>&1
check "serve refuses a client-side fault, naming it (exit 2)" bash -c "test $? -eq 2 && grep -q 'does not take the scenario.s client_crash' '$tmp/cc.out'"

# 5. Refusals.
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
