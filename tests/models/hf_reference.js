// Reference token ids of a Hugging Face tokenizer.json from the JS reference,
// @huggingface/tokenizers (the tokenizers @huggingface/transformers runs),
// for tokenizer parity tests (hf_tokenizer_test.cpp).
//
//   node hf_reference.js <@huggingface/tokenizers dir> <folder with tokenizer.json>
//                        <spam-assassin dir> <n>
//     prints JSONL {"name", "hex", "ids"}: the input as hex bytes and its ids
//     (no special tokens added), for n real e-mails sampled evenly over the
//     corpus's file list, then edge cases. Inputs are bytes; node decodes
//     them as WHATWG's TextDecoder does (invalid UTF-8 -> U+FFFD), as fedsp
//     does.
const fs = require('fs');
const path = require('path');
const [libDir, tokDir, corpusDir, nText] = process.argv.slice(2);
const { Tokenizer } = require(path.resolve(libDir, 'dist/tokenizers.cjs'));
const json = JSON.parse(fs.readFileSync(path.join(tokDir, 'tokenizer.json'), 'utf-8'));
const configPath = path.join(tokDir, 'tokenizer_config.json');
const config = fs.existsSync(configPath) ? JSON.parse(fs.readFileSync(configPath, 'utf-8')) : {};
const tok = new Tokenizer(json, config);
const decoder = new TextDecoder('utf-8');
const ids = (bytes) => tok.encode(decoder.decode(bytes), { add_special_tokens: false }).ids;

const out = [];
const emit = (name, bytes) => out.push({ name, hex: Buffer.from(bytes).toString('hex'), ids: ids(bytes) });

for (const { name, text } of require('./spam_sample.js')(corpusDir, parseInt(nText, 10)))
  emit(name, Buffer.from(text, 'utf-8'));
const edge = [
  "Hello world", "   leading spaces", "trailing spaces   ", "a  \n\n  b\t\tc",
  "I'm you're we've they'll she'd it's can't O'NEIL 'S I'M YOU'RE 'LL", "\u017f'\u017f 's '\u017f",
  "digits 1 12 123 1234 12345 1234567890 3.14159 4,567.89 \u00bd \u0663\u0664 \uff11\uff12",
  "na\u00efve caf\u00e9 \u00dcn\u00efc\u00f6d\u00e9 \u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8 \ud55c\uad6d\uc5b4 \u4e2d\u6587\u5206\u8bcd\u6d4b\u8bd5",
  "emoji \ud83d\ude00\ud83d\udc4d\ud83c\udffd \ud83d\udc68\u200d\ud83d\udc69\u200d\ud83d\udc67 and \u00a0nbsp\u2003em",
  "decomposed e\u0301 A\u030a \u212b \u212a \u1100\u1161\u11a8 vs \u00e9 \u00c5 \uac01",
  "spaces " + " ".repeat(40) + "x" + " ".repeat(3000) + "y", " ".repeat(5000), "\n".repeat(300) + "z",
  "tab\tnewline\nreturn\r\n\r\nline\u2028sep\u2029para\u0085nel\ufeffbom\u000bvt\u000cff",
  "punctuation!!! ... ?!? --- *** <<>> ((( ))) [[ ]] {{ }}", "$$$ 100% a,b,,c,,,d ,,,,,,,,,,,,,,,,",
  "<|endoftext|> special <|im_start|>user\nhi<|im_end|> <|begin_of_text|>x<|end_of_text|>",
  "e-mail: zzzz@localhost.net http://example.com/a?b=c&d=e#f", "", " ", "\n", "x",
  "CamelCaseWords ALLCAPS lowercase MiXeD123abc 456DEF", "\u0645\u0631\u062d\u0628\u0627 \u05e9\u05dc\u05d5\u05dd \u0928\u092e\u0938\u094d\u0924\u0947 \u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35",
];
edge.forEach((text, i) => emit('edge-' + i, Buffer.from(text, 'utf-8')));
// Invalid UTF-8 and lone surrogates as bytes.
const invalid = [
  [0xff], [0xe2, 0x82], [0xed, 0xa0, 0x80], [0xc0, 0xaf, 0x41], [0x61, 0xf0, 0x9f, 0x98, 0x62],
  [0x20, 0xfe, 0x20, 0xff, 0xff, 0x20], [0xf4, 0x90, 0x80, 0x80], [0x48, 0x69, 0x80, 0xbf, 0x21],
];
invalid.forEach((bytes, i) => emit('invalid-' + i, Buffer.from(bytes)));
for (const o of out) console.log(JSON.stringify(o));
