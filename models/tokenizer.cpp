#include "models/tokenizer.hpp"
#include "runtime/files.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "runtime/json.hpp"

namespace fedsp {

namespace {

struct code_range {
  char32_t first, last;
};

#include "models/unicode_tables.inc"

template <std::size_t N>
bool in_table(const code_range (&table)[N], char32_t c) {
  auto it = std::upper_bound(std::begin(table), std::end(table), c,
                             [](char32_t v, const code_range& r) { return v < r.first; });
  return it != std::begin(table) && c <= std::prev(it)->last;
}

bool is_letter(char32_t c) { return in_table(letter_ranges, c); }
bool is_number(char32_t c) { return in_table(number_ranges, c); }
bool is_space(char32_t c) { return in_table(space_ranges, c); }
bool is_other(char32_t c) { return !is_space(c) && !is_letter(c) && !is_number(c); }

/// Maps a vocabulary string (in bytes_to_unicode characters) to raw bytes.
bool to_raw(const std::string& encoded, const std::unordered_map<char32_t, char>& back,
            std::string& raw) {
  raw.clear();
  for (char32_t c : utf8_decode(encoded)) {
    auto it = back.find(c);
    if (it == back.end())
      return false;
    raw += it->second;
  }
  return true;
}

result<std::string> slurp(const std::string& path) {
  return read_bounded_file(path, limits::vocabulary_bytes, "vocabulary file");
}

} // namespace

// -- UTF-8 -----------------------------------------------------------------------

void utf8_append(char32_t c, std::string& out) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

/// GPT-2's bytes_to_unicode: printable bytes map to themselves, the others
/// to U+0100 onwards. Returns the code point for each byte.
std::vector<char32_t> gpt2_byte_chars() {
  std::vector<char32_t> table(256, 0);
  std::vector<bool> direct(256, false);
  for (int b = '!'; b <= '~'; ++b)
    direct[static_cast<std::size_t>(b)] = true;
  for (int b = 0xA1; b <= 0xAC; ++b)
    direct[static_cast<std::size_t>(b)] = true;
  for (int b = 0xAE; b <= 0xFF; ++b)
    direct[static_cast<std::size_t>(b)] = true;
  char32_t next = 256;
  for (int b = 0; b < 256; ++b)
    table[static_cast<std::size_t>(b)]
      = direct[static_cast<std::size_t>(b)] ? static_cast<char32_t>(b) : next++;
  return table;
}


std::u32string utf8_decode(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  std::size_t i = 0, n = s.size();
  while (i < n) {
    auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
      out += static_cast<char32_t>(b);
      ++i;
      continue;
    }
    int need;
    char32_t cp;
    unsigned char lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) {
      need = 1, cp = b & 0x1F;
    } else if (b >= 0xE0 && b <= 0xEF) {
      need = 2, cp = b & 0x0F;
      if (b == 0xE0) lo = 0xA0;
      if (b == 0xED) hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
      need = 3, cp = b & 0x07;
      if (b == 0xF0) lo = 0x90;
      if (b == 0xF4) hi = 0x8F;
    } else {
      out += U'\uFFFD';
      ++i;
      continue;
    }
    ++i;
    bool ok = true;
    for (int k = 0; k < need; ++k) {
      if (i >= n) { ok = false; break; }
      auto c = static_cast<unsigned char>(s[i]);
      if (c < lo || c > hi) { ok = false; break; }
      lo = 0x80, hi = 0xBF;
      cp = (cp << 6) | (c & 0x3F);
      ++i;
    }
    // An invalid continuation is not consumed: it starts the next sequence.
    out += ok ? cp : U'\uFFFD';
  }
  return out;
}

// -- pre-tokenisation ------------------------------------------------------------------

std::vector<std::string> gpt2_pretokenize(std::string_view text) {
  auto cps = utf8_decode(text);
  std::size_t n = cps.size();
  std::vector<std::string> pieces;
  auto emit = [&](std::size_t a, std::size_t b) {
    std::string piece;
    for (std::size_t k = a; k < b; ++k)
      utf8_append(cps[k], piece);
    pieces.push_back(std::move(piece));
  };
  // ` ?<class>+` at i: the optional space is taken when a class char follows.
  auto run_of = [&](std::size_t i, bool (*cls)(char32_t)) -> std::size_t {
    std::size_t j = i;
    if (cps[j] == U' ' && j + 1 < n && cls(cps[j + 1]))
      ++j;
    if (!cls(cps[j]))
      return i;
    while (j < n && cls(cps[j]))
      ++j;
    return j;
  };
  std::size_t i = 0;
  while (i < n) {
    if (cps[i] == U'\'' && i + 1 < n) {
      static const std::u32string contractions[] = {U"s", U"t", U"re", U"ve",
                                                    U"m", U"ll", U"d"};
      bool hit = false;
      for (auto& c : contractions)
        if (cps.compare(i + 1, c.size(), c) == 0) {
          emit(i, i + 1 + c.size());
          i += 1 + c.size();
          hit = true;
          break;
        }
      if (hit)
        continue;
    }
    std::size_t e;
    if ((e = run_of(i, is_letter)) > i || (e = run_of(i, is_number)) > i
        || (e = run_of(i, is_other)) > i) {
      emit(i, e);
      i = e;
      continue;
    }
    // Whitespace: \s+(?!\S) backs off one character when a non-space
    // follows the run; a single space before a non-space is \s+.
    std::size_t k = i;
    while (k < n && is_space(cps[k]))
      ++k;
    if (k < n && k - i >= 2)
      --k;
    emit(i, k);
    i = k;
  }
  return pieces;
}

// -- byte tokenizer --------------------------------------------------------------------

std::vector<std::int32_t> byte_tokenizer::encode(std::string_view text) const {
  std::vector<std::int32_t> out;
  out.reserve(text.size());
  for (unsigned char c : text)
    out.push_back(c);
  return out;
}

std::string byte_tokenizer::decode(const std::vector<std::int32_t>& ids) const {
  std::string out;
  for (auto id : ids)
    if (id >= 0 && id < 256)
      out += static_cast<char>(id);
  return out;
}

// -- GPT-2 BPE --------------------------------------------------------------------------

result<std::unique_ptr<gpt2_tokenizer>> gpt2_tokenizer::load(const std::string& dir, bool opt) {
  auto enc_path = dir + "/encoder.json", bpe_path = dir + "/vocab.bpe";
  std::error_code ec;
  if (!std::filesystem::exists(enc_path, ec) && std::filesystem::exists(dir + "/vocab.json", ec)) {
    enc_path = dir + "/vocab.json"; // Hugging Face's names for the same files
    bpe_path = dir + "/merges.txt";
  }
  auto enc_text = slurp(enc_path);
  if (!enc_text)
    return error{errc::io, enc_text.err().text + " (run 'make data' for the GPT-2 vocabulary)"};
  auto bpe_text = slurp(bpe_path);
  if (!bpe_text)
    return error{errc::io, bpe_text.err().text + " (run 'make data' for the GPT-2 vocabulary)"};
  auto enc = json::parse(enc_text.value());
  if (!enc || !enc.value().is_object())
    return error{errc::malformed, enc_path + ": not a JSON object of token ids"};

  std::unique_ptr<gpt2_tokenizer> tok(new gpt2_tokenizer());
  std::unordered_map<char32_t, char> back;
  auto table = gpt2_byte_chars();
  for (int b = 0; b < 256; ++b)
    back[table[static_cast<std::size_t>(b)]] = static_cast<char>(b);

  std::string raw;
  for (auto& [key, value] : enc.value().as_object()) {
    if (!value.is_number() || value.as_number() < 0 || value.as_number() > 1e7)
      return error{errc::malformed, enc_path + ": token '" + key + "' has no valid id"};
    if (!to_raw(key, back, raw))
      return error{errc::malformed, enc_path + ": token '" + key
                                      + "' uses a character outside GPT-2's byte alphabet"};
    auto id = static_cast<std::int32_t>(value.as_number());
    tok->bytes_to_id_[raw] = id;
    if (static_cast<std::size_t>(id) >= tok->id_to_bytes_.size())
      tok->id_to_bytes_.resize(static_cast<std::size_t>(id) + 1);
    tok->id_to_bytes_[static_cast<std::size_t>(id)] = raw;
  }
  // vocab.bpe: a version line, then one merge per line; the last line is
  // dropped as the reference does (lines[1:-1]). Ranks are keyed by
  // "first,second" and a later merge overwrites an equal key, as the JS
  // reference's object keyed by the stringified pair does.
  std::vector<std::string> lines;
  std::istringstream in(bpe_text.value());
  for (std::string line; std::getline(in, line);)
    lines.push_back(line);
  if (!bpe_text.value().empty() && bpe_text.value().back() == '\n')
    lines.emplace_back(); // split('\n') yields a final empty element
  if (lines.size() < 2)
    return error{errc::malformed, bpe_path + ": no merges"};
  std::string first, second;
  for (std::size_t r = 1; r + 1 < lines.size(); ++r) {
    std::istringstream ls(lines[r]);
    std::string a, b;
    if (!(ls >> a >> b))
      return error{errc::malformed,
                   bpe_path + ":" + std::to_string(r + 1) + ": expected two symbols"};
    if (!to_raw(a, back, first) || !to_raw(b, back, second))
      return error{errc::malformed, bpe_path + ":" + std::to_string(r + 1)
                                      + ": symbol outside GPT-2's byte alphabet"};
    tok->ranks_[first + "," + second] = static_cast<std::int32_t>(r - 1);
  }
  if (opt) {
    auto bos = tok->bytes_to_id_.find("</s>");
    auto eot = tok->bytes_to_id_.find("<|endoftext|>");
    if (bos == tok->bytes_to_id_.end())
      bos = eot;
    if (bos == tok->bytes_to_id_.end())
      return error{errc::malformed, enc_path + ": the opt tokenizer needs '</s>' (or "
                                               "'<|endoftext|>') in the vocabulary"};
    tok->bos_ = bos->second;
  }
  return tok;
}

void gpt2_tokenizer::bpe(const std::string& piece, std::vector<std::int32_t>& out) const {
  if (auto hit = cache_.find(piece); hit != cache_.end()) {
    out.insert(out.end(), hit->second.begin(), hit->second.end());
    return;
  }
  std::vector<std::string> word;
  for (char c : piece)
    word.emplace_back(1, c);
  constexpr double no_rank = 10e10; // the reference's stand-in for "no merge"
  while (word.size() >= 2) {
    // The lowest rank wins; among pairs of equal rank, the last one (the
    // reference stores them in an object keyed by rank, later overwriting).
    double best = std::numeric_limits<double>::infinity();
    std::size_t at = 0;
    for (std::size_t i = 0; i + 1 < word.size(); ++i) {
      auto it = ranks_.find(word[i] + "," + word[i + 1]);
      double rank = it == ranks_.end() ? no_rank : it->second;
      if (rank <= best)
        best = rank, at = i;
    }
    if (best == no_rank)
      break;
    auto a = word[at], b = word[at + 1];
    std::vector<std::string> merged;
    std::size_t i = 0;
    while (i < word.size()) {
      auto j = std::find(word.begin() + static_cast<std::ptrdiff_t>(i), word.end(), a);
      if (j == word.end()) {
        merged.insert(merged.end(), word.begin() + static_cast<std::ptrdiff_t>(i), word.end());
        break;
      }
      merged.insert(merged.end(), word.begin() + static_cast<std::ptrdiff_t>(i), j);
      i = static_cast<std::size_t>(j - word.begin());
      if (i + 1 < word.size() && word[i + 1] == b) {
        merged.push_back(a + b);
        i += 2;
      } else {
        merged.push_back(word[i]);
        i += 1;
      }
    }
    word = std::move(merged);
  }
  std::vector<std::int32_t> ids;
  for (auto& sym : word) {
    auto it = bytes_to_id_.find(sym);
    // GPT-2's vocabulary holds every byte and every merge result; a symbol
    // outside it means a broken vocabulary file, and is skipped.
    if (it != bytes_to_id_.end())
      ids.push_back(it->second);
  }
  out.insert(out.end(), ids.begin(), ids.end());
  if (cache_.size() < 100000)
    cache_.emplace(piece, std::move(ids));
}

std::vector<std::int32_t> gpt2_tokenizer::encode(std::string_view text) const {
  std::vector<std::int32_t> out;
  if (bos_ >= 0)
    out.push_back(bos_);
  for (auto& piece : gpt2_pretokenize(text))
    bpe(piece, out);
  return out;
}

std::string gpt2_tokenizer::decode(const std::vector<std::int32_t>& ids) const {
  std::string out;
  for (auto id : ids)
    if (id >= 0 && static_cast<std::size_t>(id) < id_to_bytes_.size())
      out += id_to_bytes_[static_cast<std::size_t>(id)];
  return out;
}

std::vector<std::int64_t> document_stream(const tokenizer& tok,
                                          const std::vector<std::string>& docs,
                                          std::size_t from, std::size_t to) {
  std::vector<std::int64_t> out;
  auto end = tok.document_end();
  for (std::size_t i = from; i < to && i < docs.size(); ++i) {
    for (auto id : tok.encode(docs[i]))
      out.push_back(id);
    out.insert(out.end(), end.begin(), end.end());
  }
  return out;
}

std::string tokenizer_source(const std::string& kind, const std::string& vocab,
                             const std::string& model_path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  auto holds = [&](const std::string& p) {
    return !p.empty()
           && ((fs::is_regular_file(p, ec) && p.size() >= 5 && p.compare(p.size() - 5, 5, ".json") == 0)
               || fs::exists(fs::path(p) / "tokenizer.json", ec));
  };
  if (kind == "opt") {
    auto has_files = [&](const std::string& p) {
      return fs::exists(fs::path(p) / "vocab.json", ec) && fs::exists(fs::path(p) / "merges.txt", ec);
    };
    return !has_files(vocab) && has_files(model_path) ? model_path : vocab;
  }
  if (kind != "hf" || holds(vocab))
    return vocab;
  return holds(model_path) && fs::is_directory(model_path, ec) ? model_path : vocab;
}

result<std::unique_ptr<tokenizer>> make_tokenizer(const std::string& kind,
                                                  const std::string& vocab_dir) {
  if (kind == "byte")
    return std::unique_ptr<tokenizer>(new byte_tokenizer());
  if (kind == "gpt2" || kind == "opt") {
    if (vocab_dir.empty())
      return error{errc::bad_argument, "the " + kind + " tokenizer needs a vocabulary folder "
                                       "(encoder.json, vocab.bpe)"};
    auto tok = gpt2_tokenizer::load(vocab_dir, kind == "opt");
    if (!tok)
      return tok.err();
    return std::unique_ptr<tokenizer>(std::move(tok).value());
  }
  if (kind == "hf") {
    if (vocab_dir.empty())
      return error{errc::bad_argument, "the hf tokenizer needs a tokenizer.json (or a folder "
                                       "holding one)"};
    namespace fs = std::filesystem;
    std::error_code ec;
    if (!fs::is_regular_file(vocab_dir, ec) && !fs::exists(fs::path(vocab_dir) / "tokenizer.json", ec)
        && !fs::exists(fs::path(vocab_dir) / "tokenizer.model", ec))
      return error{errc::io, "the hf tokenizer needs a Hugging Face tokenizer.json, and '" + vocab_dir
                               + "' holds none (give the file or its folder: --vocab, or "
                                 "model.vocab_dir in a scenario)"};
    auto tok = hf_tokenizer::load(vocab_dir);
    if (!tok)
      return tok.err();
    return std::unique_ptr<tokenizer>(std::move(tok).value());
  }
  return error{errc::bad_argument, "unknown tokenizer '" + kind + "' (byte, gpt2, opt or hf)"};
}

} // namespace fedsp
