#!/usr/bin/env bash
# A full disk (issue 15, D9): on a 2 MB tmpfs with little room left the run
# stops within seconds, exit 1, naming the file it could not write and
# saying the directory can be resumed; it never hangs. Once space is freed,
# `fedsp resume` finishes and `fedsp check` finds every update folded once.
# Skipped (exit 77) where a tmpfs cannot be mounted (not root, a container).
# usage: full_disk_test.sh <fedsp binary> <source dir>
set -uo pipefail
fedsp=$1
src=$2
scenario=$src/tests/integration/resume.yaml
tmp=$(mktemp -d)
mnt=$tmp/disk
mkdir -p "$mnt"
if ! mount -t tmpfs -o size=2m tmpfs "$mnt" 2>/dev/null; then
  echo "skipped: cannot mount a tmpfs here (needs root outside a container)"
  rm -rf "$tmp"; exit 77
fi
trap 'umount "$mnt"; rm -rf "$tmp"' EXIT
source "$src/tests/integration/checks.sh"

# Free space left, in KiB: the log fills first, then a checkpoint, then events.jsonl.
for free in 60 200 400; do
  rm -rf "${mnt:?}"/*
  head -c $(((2048 - free) * 1024)) /dev/zero >"$mnt/fill" 2>/dev/null
  timeout 120 "$fedsp" run "$scenario" --out "$mnt/run" --quiet >"$tmp/out" 2>"$tmp/err"
  rc=$?
  check "${free} KiB free: the run stops with exit 1 (not a hang: 124)" test $rc -eq 1
  check "${free} KiB free: one clear message naming the file and the way on" \
    bash -c "grep -q 'cannot write .*$mnt/run/.*No space left on device.*can be resumed' '$tmp/err' \
             && [[ \$(wc -l <'$tmp/err') -le 3 ]]"
  rm "$mnt/fill"
  timeout 120 "$fedsp" resume "$mnt/run" --quiet >"$tmp/out" 2>&1
  check "${free} KiB free: after freeing space, resume finishes" test $? -eq 0
  check "${free} KiB free: every accepted update folded exactly once" \
    bash -c "'$fedsp' check '$mnt/run' >'$tmp/check' || { cat '$tmp/check'; false; }"
done
echo "$passes passed, $failures failed"
[[ $failures -eq 0 ]]
