#!/usr/bin/env bash
# A hostile peer before the join token (issue 15, D7; docs/network.md
# "Before the token"): one 32-byte middleman header declaring a 1.5 GiB
# payload made the server allocate 1.5 GiB. Now the server closes such a connection
# before any buffer is sized, over TLS (a peer with a valid certificate) and
# in plain text (--insecure), with and without a preamble; a peer with a
# wrong token is held to handshake-sized messages, and even the right token
# cannot declare more than 1 GiB. The server stays small and a real node
# still finishes the run.
# usage: preauth_test.sh <fedsp binary> <source dir>
set -uo pipefail
fedsp=$1
src=$2
scenario=$src/scenarios/distributed.yaml
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$tmp"; }
trap cleanup EXIT
source "$src/tests/integration/checks.sh"
"$fedsp" certs --out "$tmp/certs" >/dev/null || { echo "FAIL - fedsp certs"; exit 1; }
token=$(cat "$tmp/certs/token")
port=$((20000 + RANDOM % 20000))

# Bytes as printf writes them: a middleman header that CAF takes as valid (a
# client handshake: operation 1, actor ids 0) whose payload length (bytes
# 4-7, big-endian) is 1.5 GiB (over TLS, CAF 0.17 cannot read 2^31 bytes
# at once and drops such a peer by itself; 1.5 GiB it allocated), one
# declaring 1 MiB, and join preambles.
zeros24='\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00'
header_big="\\x01\\x00\\x00\\x00\\x60\\x00\\x00\\x00$zeros24"
header_1m="\\x01\\x00\\x00\\x00\\x00\\x10\\x00\\x00$zeros24"
# preamble <token>: the join preamble as printf %b escapes
preamble() { printf 'FEDSPJ01\\x00\\x%02x%s' "${#1}" "$1"; }
rss_mb() { awk '/VmRSS/ { print int($2 / 1024) }' "/proc/$1/status"; }

# send_tls <bytes...> : over TLS with the node certificate, holds the
# connection up to 6 s; prints "closed" if the server ended it first.
send_tls() {
  { printf '%b' "$@"; sleep 6; } | timeout 8 openssl s_client -quiet -connect 127.0.0.1:$port \
      -cert "$tmp/certs/node.pem" -key "$tmp/certs/node.key" -CAfile "$tmp/certs/ca.pem" \
      >/dev/null 2>&1
  [[ $? -ne 124 ]] && echo closed || echo open
}
# send_plain <bytes...> : the same over plain TCP.
send_plain() {
  exec 3<>/dev/tcp/127.0.0.1/$port || { echo refused; return; }
  printf '%b' "$@" >&3
  if timeout 6 cat <&3 >/dev/null; then echo closed; else echo open; fi
  exec 3<&- 3>&-
}
# attack <kind> <description> <bytes...>: the server closes it, and its
# memory does not grow by more than 100 MB while the peer holds on.
attack() {
  local kind=$1 what=$2; shift 2
  local before after verdict
  before=$(rss_mb "$serve")
  verdict=$("send_$kind" "$@")
  after=$(rss_mb "$serve")
  check "$kind: $what: closed by the server (got: $verdict)" test "$verdict" = closed
  check "$kind: ... and its memory stayed put ($before -> $after MB)" test $((after - before)) -lt 100
}

start_serve() { # start_serve <extra...>: on the next port, for 8 clients
  port=$((port + 1))
  "$fedsp" serve "$scenario" --listen 127.0.0.1:$port --out "$tmp/run-$port" --quiet "$@" \
    >"$tmp/serve-$port.out" 2>&1 &
  serve=$!; pids+=($serve)
  for _ in $(seq 1 100); do grep -q '"type":"listening"' "$tmp/run-$port/events.jsonl" 2>/dev/null && return; sleep 0.1; done
}

start_serve --certs "$tmp/certs"
attack tls "a 1.5 GiB header and no preamble" "$header_big"
attack tls "a wrong token, then a 1 MiB header (over a handshake's size)" "$(preamble wrong-token)" "$header_1m"
attack tls "the right token, then a 1.5 GiB header (over 1 GiB)" "$(preamble "$token")" "$header_big"
attack tls "a preamble declaring a 300-byte token" 'FEDSPJ01\x01\x2c'
says() { grep -qF -- "$1" "$tmp/serve-$port.out"; }
check "tls: the server names each refusal on stderr: no preamble" says "it did not open with a fedsp join preamble"
check "... a wrong token held to a handshake's size" says "declared 1048576 bytes; at most 65536 are taken before the join token"
check "... the right token held to 1 GiB" says "declared 1610612736 bytes; at most 1074790400 are taken"
check "... a token too long" says "its preamble declared a token of 300 bytes"
"$fedsp" join --server 127.0.0.1:$port --certs "$tmp/certs" --token-file "$tmp/certs/token" \
  --clients 0-7 --out "$tmp/node" --quiet >/dev/null 2>&1
check "tls: a real node still finishes the run after the attacks" test $? -eq 0
wait "$serve"
check "tls: ... and the server exits 0" test $? -eq 0

start_serve --insecure
attack plain "a 1.5 GiB header and no preamble" "$header_big"
attack plain "the insecure token, then a 1.5 GiB header" "$(preamble insecure)" "$header_big"
echo nope >"$tmp/bad-token"
"$fedsp" join --server 127.0.0.1:$port --insecure --token-file "$tmp/bad-token" --clients 0-7 \
  --out "$tmp/bad" >"$tmp/bad.out" 2>&1
check "plain: a node with a wrong token is still refused by name (exit 3)" \
  bash -c "test $? -eq 3 && grep -q 'wrong join token' '$tmp/bad.out'"
"$fedsp" join --server 127.0.0.1:$port --insecure --clients 0-7 --out "$tmp/node2" --quiet >/dev/null 2>&1
check "plain: a real node still finishes the run" test $? -eq 0
wait "$serve"
check "plain: ... and the server exits 0" test $? -eq 0

echo "preauth: $passes passed, $failures failed"
[[ $failures -eq 0 ]]
