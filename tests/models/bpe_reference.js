// Reference token ids from the JS GPT-2 encoder (npm gpt-3-encoder@1.1.4)
// for tokenizer parity tests.
//
//   node bpe_reference.js <gpt-3-encoder dir> <spam-assassin dir> <n>
//     prints JSONL {"name", "text", "ids"} for n real e-mails, sampled evenly
//     over the corpus's file list, followed by hand-written edge cases.
//   node bpe_reference.js <gpt-3-encoder dir> --stdin
//     reads standard input as UTF-8 and prints its ids separated by spaces.
const fs = require('fs');
const path = require('path');
const [encDir, second, third] = process.argv.slice(2);
const { encode } = require(path.resolve(encDir, 'Encoder.js'));

if (second === '--stdin') {
  console.log(encode(fs.readFileSync(0, 'utf-8')).join(' '));
  process.exit(0);
}

const out = [];
for (const { name, text } of require('./spam_sample.js')(second, parseInt(third, 10)))
  out.push({ name, text, ids: encode(text) });
const edge = [
  "Hello world", "   leading spaces", "trailing spaces   ", "a  \n\n  b\t\tc",
  "I'm you're we've they'll she'd it's can't O'NEIL 'S", "numbers 123 4,567.89 ½ ٣",
  "naïve café Ünïcödé 日本語のテキスト 한국어", "emoji 😀👍🏽 and \u00a0nbsp\u2003em",
  "punctuation!!! ... ?!? --- ***", "\ud800 lone surrogate", "tab\tnewline\nreturn\r\n",
  "", " ", "\n", "x", "$$$ 100%", "a,b,,c,,,d", ",,,,,,,,,,,,,,,,", "e-mail: zzzz@localhost.net",
];
edge.forEach((text, i) => out.push({ name: 'edge-' + i, text, ids: encode(text) }));
for (const o of out) console.log(JSON.stringify(o));
