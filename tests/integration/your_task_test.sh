#!/usr/bin/env bash
# "Your own task" as a user meets it (README): fedsp prepare jsonl on a good
# file and on broken ones, fedsp pretrain on its corpus, and fedsp run of
# scenarios/templates/your-task.yaml pointed at the folder with --set.
# usage: your_task_test.sh <fedsp binary> <source dir>
set -uo pipefail
fedsp=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$src/tests/integration/checks.sh"

# A three-choice task of 300 examples in 6 groups: which colour a line names.
colours=(red green blue)
for i in $(seq 0 299); do
  l=$((i % 3))
  printf '{"context": "item %d is %s; colour?", "choices": [" red", " green", " blue"], "label": %d, "group": "g%d"}\n' \
    "$i" "${colours[$l]}" "$l" $((i % 6))
done >"$tmp/task.jsonl"

check "prepare jsonl writes the task folder" "$fedsp" prepare jsonl --in "$tmp/task.jsonl" --out "$tmp/t" --seed 3
for f in public train valid test corpus; do
  check "prepare jsonl wrote $f.jsonl" test -s "$tmp/t/$f.jsonl"
done
check "the splits hold every example once" bash -c "[[ \$(cat '$tmp/t/public.jsonl' '$tmp/t/train.jsonl' '$tmp/t/valid.jsonl' '$tmp/t/test.jsonl' | grep -o 'item [0-9]* ' | sort -u | wc -l) == 300 && \$(cat '$tmp/t/'{public,train,valid,test}.jsonl | wc -l) == 300 ]]"
# 100 per label: test round(15) + valid round(10) + public round(25) per label.
check "splits are stratified: 45 test, 30 valid, 75 public, 150 train" \
  bash -c "[[ \$(wc -l < '$tmp/t/test.jsonl') == 45 && \$(wc -l < '$tmp/t/valid.jsonl') == 30 && \$(wc -l < '$tmp/t/public.jsonl') == 75 && \$(wc -l < '$tmp/t/train.jsonl') == 150 ]]"
check "each label has 15 test examples" bash -c "[[ \$(grep -c '\"label\":2' '$tmp/t/test.jsonl') == 15 ]]"
check "without --corpus the corpus is the public contexts (75 documents)" bash -c "[[ \$(wc -l < '$tmp/t/corpus.jsonl') == 75 ]] && grep -q '\"text\":\"item ' '$tmp/t/corpus.jsonl'"
check "stats.json counts the examples and groups" bash -c "grep -q '\"examples\":300' '$tmp/t/stats.json' && grep -q '\"groups\":6' '$tmp/t/stats.json'"
check "the same seed gives the same split" bash -c "'$fedsp' prepare jsonl --in '$tmp/task.jsonl' --out '$tmp/t2' --seed 3 >/dev/null && diff -q '$tmp/t/test.jsonl' '$tmp/t2/test.jsonl'"
check "another seed gives another split" bash -c "'$fedsp' prepare jsonl --in '$tmp/task.jsonl' --out '$tmp/t3' --seed 4 >/dev/null && ! diff -q '$tmp/t/test.jsonl' '$tmp/t3/test.jsonl' >/dev/null"

printf 'First paragraph,\nstill the first.\n\n\nSecond paragraph.\n \nThird.\n' >"$tmp/corpus.txt"
check "--corpus text: one document per paragraph" bash -c "'$fedsp' prepare jsonl --in '$tmp/task.jsonl' --out '$tmp/tc' --corpus '$tmp/corpus.txt' >/dev/null && [[ \$(wc -l < '$tmp/tc/corpus.jsonl') == 3 ]] && grep -q 'First paragraph,\\\\nstill the first.' '$tmp/tc/corpus.jsonl'"
printf '{"text": "a"}\n{"text": "b"}\n' >"$tmp/corpus.jsonl"
check "--corpus JSONL is read as documents" bash -c "'$fedsp' prepare jsonl --in '$tmp/task.jsonl' --out '$tmp/tj' --corpus '$tmp/corpus.jsonl' >/dev/null && [[ \$(wc -l < '$tmp/tj/corpus.jsonl') == 2 ]]"

# Bad input: every bad line named, nothing written.
cp "$tmp/task.jsonl" "$tmp/bad.jsonl"
{
  echo 'not json at all'
  echo '{"context": 3, "choices": ["a", "b"], "label": 0}'
  echo '{"context": "x", "choices": ["a"], "label": 0}'
  echo '{"context": "x", "choices": ["a", "b"], "label": 2}'
  echo '{"context": "x", "choices": ["a", "b"], "label": 0.5}'
  echo '{"context": "x", "choices": ["a", "a"], "label": 0}'
  echo '{"context": "x", "choices": ["a", "b"], "label": 1, "group": 7}'
  echo '[1, 2]'
} >>"$tmp/bad.jsonl"
check "a bad line is named file:line" expect_fail 2 "bad.jsonl:301: not JSON" "$fedsp" prepare jsonl --in "$tmp/bad.jsonl" --out "$tmp/out-bad"
for want in "bad.jsonl:302: 'context' missing or not a string" "bad.jsonl:303: 'choices' missing" \
            "bad.jsonl:304: 'label' missing or not an index" "bad.jsonl:305: 'label'" \
            "bad.jsonl:306: 'choices' lists \"a\" twice" "bad.jsonl:307: 'group' is not a string" \
            "bad.jsonl:308: not a JSON object" "8 of 308 examples are malformed; nothing was written"; do
  check "reported: $want" grep -qF -- "$want" "$tmp/err"
done
check "nothing was written for a bad file" bash -c "! ls -d '$tmp'/out-bad* 2>/dev/null"
head -c 3000 /dev/urandom >"$tmp/garbage.jsonl"
check "garbage bytes are refused" expect_fail 2 "garbage.jsonl:1:" "$fedsp" prepare jsonl --in "$tmp/garbage.jsonl" --out "$tmp/out-g"
: >"$tmp/empty.jsonl"
check "an empty file is refused" expect_fail 2 "holds no examples" "$fedsp" prepare jsonl --in "$tmp/empty.jsonl" --out "$tmp/out-g"
check "a folder as input is refused" expect_fail 1 "is a folder, not a regular file" "$fedsp" prepare jsonl --in "$tmp" --out "$tmp/out-g"
check "a missing input is refused" expect_fail 1 "does not exist" "$fedsp" prepare jsonl --in "$tmp/nowhere.jsonl" --out "$tmp/out-g"
check "nothing was written for refused inputs" bash -c "! ls -d '$tmp'/out-g* 2>/dev/null"
check "an existing task folder is not overwritten" expect_fail 2 "exists and is not an empty folder" "$fedsp" prepare jsonl --in "$tmp/task.jsonl" --out "$tmp/t"
check "fractions leaving no train split are refused" expect_fail 2 "nothing is left for the clients" "$fedsp" prepare jsonl --in "$tmp/task.jsonl" --out "$tmp/f" --public 0.5 --valid 0.3 --test 0.2
check "a fraction that is not a number is refused" expect_fail 2 "--test needs a number, got 'half'" "$fedsp" prepare jsonl --in "$tmp/task.jsonl" --out "$tmp/f" --test half
check "/dev/zero is refused before reading" expect_fail 1 "is a character device, not a regular file" "$fedsp" prepare jsonl --in /dev/zero --out "$tmp/out-g"
head -n 2 "$tmp/task.jsonl" >"$tmp/two.jsonl"
check "too few examples for the splits are refused" expect_fail 2 "split empty" "$fedsp" prepare jsonl --in "$tmp/two.jsonl" --out "$tmp/f"
check "--in is required" expect_fail 2 "--in and --out are required" "$fedsp" prepare jsonl --out "$tmp/f"
check "a missing --corpus is refused" expect_fail 1 "corpus '.*nowhere.txt' does not exist" "$fedsp" prepare jsonl --in "$tmp/task.jsonl" --out "$tmp/f" --corpus "$tmp/nowhere.txt"

# The other two commands of the recipe, at toy sizes.
check "pretrain on the task's corpus" "$fedsp" pretrain --corpus "$tmp/t/corpus.jsonl" --out "$tmp/t/model.safetensors" --steps 3 --batch 2 --seq-len 16 --eval-every 0
small=(--set federation.rounds=2 --set training.prompt_steps=2 --set training.model_steps=1
       --set method.distill_steps=2 --set method.distill_seq_len=16 --set method.server_steps=2 --set eval.max_examples=20 --set eval.every=1)
(cd "$tmp" && "$fedsp" run "$src/scenarios/templates/your-task.yaml" --set data.dir=t \
   --set model.checkpoint=t/model.safetensors "${small[@]}" --out "$tmp/run" --quiet >"$tmp/run.out" 2>&1)
check "the template runs on the prepared folder (relative --set paths from the current folder)" test -s "$tmp/run/summary.json"
[[ -s "$tmp/run/summary.json" ]] || cat "$tmp/run.out"
check "the run scored 2 versions on the task's test split" bash -c "grep -q '\"final_version\":2' '$tmp/run/summary.json'"
check "run.json records the scenario with the settings" bash -c "grep -q 'with --set data.dir=' '$tmp/run/run.json'"
check "--set without = is refused" expect_fail 2 "expected KEY=VALUE" "$fedsp" run "$src/scenarios/templates/your-task.yaml" --set rounds
check "--set of an unknown key names the setting" expect_fail 2 "your-task.yaml, --set 'federation.roundz=3': unknown key 'federation.roundz'" "$fedsp" run "$src/scenarios/templates/your-task.yaml" --set federation.roundz=3
check "--set too deep a key is refused" expect_fail 2 "KEY is 'key' or 'section.key'" "$fedsp" run "$src/scenarios/templates/your-task.yaml" --set a.b.c=1
check "--set of a bad value names the setting and the key" expect_fail 2 "--set 'clients.count=many': key 'clients.count' must be an integer" "$fedsp" run "$src/scenarios/templates/your-task.yaml" --set clients.count=many
check "the template without a prepared folder names the missing file" expect_fail 2 "key 'data.dir'" "$fedsp" run "$src/scenarios/templates/your-task.yaml" --set data.dir="$tmp/nowhere" --set model.checkpoint="$tmp/t/model.safetensors"

echo "your_task: $passes passed, $failures failed"
[[ $failures -eq 0 ]]
