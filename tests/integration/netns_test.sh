#!/usr/bin/env bash
# Three hosts made with network namespaces and veth pairs (and torn down
# here): the server in one, a join node in each of the other two, each
# reaching the server over its own link. Needs root and the ip command;
# otherwise it says so and is skipped (exit 77).
# usage: netns_test.sh <fedsp binary> <source dir>
set -uo pipefail
fedsp=$(realpath "$1")
src=$2
if [[ $(id -u) -ne 0 ]]; then echo "SKIP: network namespaces need root"; exit 77; fi
if ! command -v ip >/dev/null; then echo "SKIP: no ip command (iproute2)"; exit 77; fi
tag=f$$
s=$tag-s a=$tag-a b=$tag-b
tmp=$(mktemp -d)
cleanup() {
  for ns in $s $a $b; do ip netns pids "$ns" 2>/dev/null | xargs -r kill -9; ip netns del "$ns" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
for ns in $s $a $b; do
  ip netns add "$ns" || { echo "SKIP: cannot create network namespaces here"; exit 77; }
  ip -n "$ns" link set lo up
done
# host a <-> server over 10.77.1.0/24, host b <-> server over 10.77.2.0/24
ip link add "$tag-sa" netns "$s" type veth peer name "$tag-as" netns "$a"
ip link add "$tag-sb" netns "$s" type veth peer name "$tag-bs" netns "$b"
ip -n "$s" addr add 10.77.1.1/24 dev "$tag-sa"
ip -n "$a" addr add 10.77.1.2/24 dev "$tag-as"
ip -n "$s" addr add 10.77.2.1/24 dev "$tag-sb"
ip -n "$b" addr add 10.77.2.2/24 dev "$tag-bs"
for l in "$s $tag-sa" "$s $tag-sb" "$a $tag-as" "$b $tag-bs"; do set -- $l; ip -n "$1" link set "$2" up; done
failures=0
check() {
  local what=$1; shift
  if "$@"; then echo "ok   - $what"; else echo "FAIL - $what"; failures=$((failures + 1)); fi
}
check "host a has no route to host b (separate links)" bash -c "! ip netns exec $a ip route get 10.77.2.2 >/dev/null 2>&1"
"$fedsp" certs --out "$tmp/certs" >/dev/null
ip netns exec "$s" "$fedsp" serve "$src/scenarios/distributed.yaml" --listen 0.0.0.0:7700 \
  --certs "$tmp/certs" --out "$tmp/run" --quiet >"$tmp/serve.out" 2>&1 &
serve=$!
ip netns exec "$a" "$fedsp" join --server 10.77.1.1:7700 --certs "$tmp/certs" \
  --token-file "$tmp/certs/token" --clients 0-3 --out "$tmp/ja" --quiet &
ja=$!
ip netns exec "$b" "$fedsp" join --server 10.77.2.1:7700 --certs "$tmp/certs" \
  --token-file "$tmp/certs/token" --clients 4-7 --out "$tmp/jb" --quiet &
jb=$!
wait $serve; rs=$?
wait $ja; ra=$?
wait $jb; rb=$?
check "the server in its namespace finishes the run" test $rs -eq 0 -a -s "$tmp/run/summary.json"
check "both hosts' join nodes exit 0" test $ra -eq 0 -a $rb -eq 0
check "the run keeps the invariants" "$fedsp" check "$tmp/run"
echo "netns: $failures failure(s)"
[[ $failures -eq 0 ]]
