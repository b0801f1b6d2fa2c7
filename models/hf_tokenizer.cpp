// Hugging Face tokenizer.json: byte-level BPE as Llama 3, Qwen and GPT-2
// style tokenizers define it, giving the ids of the JS reference
// (@huggingface/tokenizers, the tokenizer of @huggingface/transformers).
//
// The pipeline, as the reference runs it (models/tokenizer.hpp has the
// contract):
//   1. input bytes -> text: WHATWG UTF-8 decoding (invalid bytes -> U+FFFD);
//   2. split on added tokens (leftmost, longest match), first those that are
//      not normalized, then, after the normalizer, those that are;
//      lstrip/rstrip trim the neighbouring text;
//   3. normalizer: none or NFC (ICU);
//   4. pre-tokenizer: Split (a regex, "Isolated": matches and the text
//      between them are pieces) and/or ByteLevel (optional prefix space,
//      optionally GPT-2's regex under JavaScript's classes; then each UTF-8
//      byte becomes its bytes_to_unicode character);
//   5. BPE per piece: merges in rank order, ties to the leftmost pair (the
//      reference's priority queue); with ignore_merges a piece that is a
//      vocabulary entry is taken whole.
// Regexes are written for Oniguruma; they are translated as the reference
// translates them to JavaScript: (?i:...) folds ASCII letters only, \s is
// White_Space, a quantifier after {n,m} stacks, a possessive + is dropped.
// \p{L}, \p{N} and JavaScript's \s are spelled out as code point ranges from
// node's own tables (unicode_tables.inc), so letters and digits are node's
// whatever ICU's Unicode version; the regex engine is ICU's.
#include "models/tokenizer.hpp"

#include <algorithm>
#include <bitset>
#include <filesystem>
#include <queue>
#include <sstream>

#include <unicode/normalizer2.h>
#include <unicode/regex.h>
#include <unicode/unistr.h>

#include "runtime/files.hpp"
#include "runtime/json.hpp"

namespace fedsp {

namespace {

struct code_range {
  char32_t first, last;
};

#include "models/unicode_tables.inc"

std::string hex(char32_t c) {
  std::ostringstream s;
  s << "\\x{" << std::hex << static_cast<std::uint32_t>(c) << "}";
  return s.str();
}

/// A table's ranges as the inside of an ICU character class.
template <std::size_t N>
std::string class_body(const code_range (&table)[N]) {
  std::string out;
  for (auto& r : table)
    out += r.first == r.last ? hex(r.first) : hex(r.first) + "-" + hex(r.last);
  return out;
}

/// Unicode White_Space (what the reference makes of Oniguruma's \s).
const std::string& white_space_body() {
  static const std::string body = "\\x{9}-\\x{d}\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}"
                                  "\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}";
  return body;
}

const std::string& letters() {
  static const std::string body = class_body(letter_ranges);
  return body;
}
const std::string& numbers() {
  static const std::string body = class_body(number_ranges);
  return body;
}
const std::string& js_spaces() {
  static const std::string body = class_body(space_ranges);
  return body;
}

/// Translates a tokenizer.json regex (Oniguruma syntax) to ICU's, as the
/// reference translates it to JavaScript. Constructs it does not know are
/// refused by name.
result<std::string> translate_regex(const std::string& re) {
  std::string out;
  std::vector<std::pair<std::size_t, bool>> groups; // (atom start, fold before)
  bool fold = false;
  std::size_t atom = std::string::npos; // start of the last atom in `out`
  bool after_quantifier = false;
  auto bad = [&](const std::string& what) {
    return error{errc::unsupported, "tokenizer.json: regex '" + re + "': " + what
                                      + " is not supported"};
  };
  auto emit = [&](const std::string& a) {
    atom = out.size();
    out += a;
    after_quantifier = false;
  };
  auto is_ascii_letter = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
  auto folded = [&](char c) {
    char lo = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    char up = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return std::string("[") + lo + up + "]";
  };
  // An escape at re[i] == '\\': what it means inside a class body (in_class)
  // or as an atom.
  auto escape = [&](std::size_t& i, bool in_class) -> result<std::string> {
    if (i + 1 >= re.size())
      return bad("a trailing backslash");
    char n = re[i + 1];
    if ((n == 'p' || n == 'P') && i + 2 < re.size() && re[i + 2] == '{') {
      auto close = re.find('}', i + 3);
      if (close == std::string::npos)
        return bad("an unterminated \\p{");
      auto name = re.substr(i + 3, close - i - 3);
      i = close + 1;
      std::string body;
      if (name == "L")
        body = letters();
      else if (name == "N")
        body = numbers();
      else
        body = std::string("\\p{") + name + "}"; // ICU's own tables
      if (n == 'P') {
        if (in_class)
          return bad("\\P{...} inside a character class");
        return "[^" + body + "]";
      }
      return in_class ? body : "[" + body + "]";
    }
    i += 2;
    switch (n) {
    case 's':
      return in_class ? white_space_body() : "[" + white_space_body() + "]";
    case 'S':
      if (in_class)
        return bad("\\S inside a character class");
      return "[^" + white_space_body() + "]";
    case 'd':
      return std::string("\\p{Nd}");
    case 'r':
    case 'n':
    case 't':
    case 'f':
    case 'v':
      return std::string("\\") + n;
    case 'w':
    case 'W':
    case 'b':
    case 'B':
    case 'G':
    case 'A':
    case 'z':
    case 'Z':
    case 'h':
    case 'H':
      return bad(std::string("\\") + n);
    default:
      if (std::isalnum(static_cast<unsigned char>(n)))
        return bad(std::string("the escape \\") + n);
      return std::string("\\") + n; // an escaped punctuation character
    }
  };
  for (std::size_t i = 0; i < re.size();) {
    char c = re[i];
    if (c == '\\') {
      auto e = escape(i, false);
      if (!e)
        return e.err();
      if (fold && e.value().size() == 1 && is_ascii_letter(e.value()[0]))
        emit(folded(e.value()[0]));
      else
        emit(e.value());
      continue;
    }
    if (c == '[') {
      std::string body = "[";
      std::size_t j = i + 1;
      if (j < re.size() && re[j] == '^')
        body += re[j++];
      bool first = true;
      for (; j < re.size() && (re[j] != ']' || first); first = false) {
        if (re[j] == '[')
          return bad("a nested character class");
        if (re[j] == '\\') {
          auto e = escape(j, true);
          if (!e)
            return e.err();
          body += e.value();
          continue;
        }
        if (re[j] == '&' && j + 1 < re.size() && re[j + 1] == '&')
          return bad("a class intersection (&&)");
        if (fold && is_ascii_letter(re[j])) {
          body += static_cast<char>(std::tolower(static_cast<unsigned char>(re[j])));
          body += static_cast<char>(std::toupper(static_cast<unsigned char>(re[j])));
          ++j;
          continue;
        }
        if (re[j] == '&' || re[j] == '$') { // literal here, special in ICU's sets
          body += '\\';
          body += re[j++];
          continue;
        }
        std::size_t len = 1;
        auto b = static_cast<unsigned char>(re[j]);
        if (b >= 0xF0) len = 4; else if (b >= 0xE0) len = 3; else if (b >= 0xC0) len = 2;
        body += re.substr(j, len);
        j += len;
      }
      if (j >= re.size())
        return bad("an unterminated character class");
      emit(body + "]");
      i = j + 1;
      continue;
    }
    if (c == '(') {
      if (re.compare(i, 4, "(?i:") == 0) {
        groups.emplace_back(out.size(), fold);
        fold = true;
        out += "(?:";
        i += 4;
      } else if (re.compare(i, 3, "(?:") == 0 || re.compare(i, 3, "(?=") == 0
                 || re.compare(i, 3, "(?!") == 0) {
        groups.emplace_back(out.size(), fold);
        out += re.substr(i, 3);
        i += 3;
      } else if (re.compare(i, 4, "(?<=") == 0 || re.compare(i, 4, "(?<!") == 0) {
        groups.emplace_back(out.size(), fold);
        out += re.substr(i, 4);
        i += 4;
      } else if (re.compare(i, 3, "(?>") == 0) {
        groups.emplace_back(out.size(), fold);
        out += "(?:"; // atomic groups are ordinary groups in the reference
        i += 3;
      } else if (re.compare(i, 2, "(?") == 0) {
        return bad("the group '" + re.substr(i, 4) + "...'");
      } else {
        groups.emplace_back(out.size(), fold);
        out += "(";
        ++i;
      }
      after_quantifier = false;
      continue;
    }
    if (c == ')') {
      if (groups.empty())
        return bad("an unbalanced ')'");
      out += ')';
      atom = groups.back().first;
      fold = groups.back().second;
      groups.pop_back();
      after_quantifier = false;
      ++i;
      continue;
    }
    if (c == '|') {
      out += c;
      atom = std::string::npos;
      after_quantifier = false;
      ++i;
      continue;
    }
    if (c == '{') {
      auto close = re.find('}', i);
      auto inside = close == std::string::npos ? std::string() : re.substr(i + 1, close - i - 1);
      bool quant = !inside.empty() && atom != std::string::npos
                   && inside.find_first_not_of("0123456789,") == std::string::npos
                   && inside != ",";
      if (!quant) {
        emit("\\{");
        ++i;
        continue;
      }
      if (inside[0] == ',')
        inside = "0" + inside;
      i = close + 1;
      if (i < re.size() && (re[i] == '+' || re[i] == '*')) { // stacked: (X{n,m})+
        out = out.substr(0, atom) + "(?:" + out.substr(atom) + "{" + inside + "})" + re[i];
        ++i;
      } else {
        out += "{" + inside + "}";
      }
      after_quantifier = true;
      continue;
    }
    if (c == '+' || c == '*' || c == '?') {
      if (c == '+' && after_quantifier) { // possessive: an ordinary quantifier
        ++i;
        continue;
      }
      out += c;
      after_quantifier = true;
      ++i;
      continue;
    }
    if (c == '.') {
      emit("[^\\n]");
      ++i;
      continue;
    }
    if (c == '^' || c == '$')
      return bad(std::string("the anchor ") + c);
    if (c == '}' || c == ']') {
      emit(std::string("\\") + c);
      ++i;
      continue;
    }
    std::size_t len = 1;
    auto b = static_cast<unsigned char>(c);
    if (b >= 0xF0) len = 4; else if (b >= 0xE0) len = 3; else if (b >= 0xC0) len = 2;
    if (fold && is_ascii_letter(c))
      emit(folded(c));
    else
      emit(re.substr(i, len));
    i += len;
  }
  if (!groups.empty())
    return bad("an unbalanced '('");
  return out;
}

icu::UnicodeString to_u16(const std::string& s) { return icu::UnicodeString::fromUTF8(s); }
std::string to_u8(const icu::UnicodeString& s) {
  std::string out;
  s.toUTF8String(out);
  return out;
}

/// The matches of `re` in `text`, and with `gaps` the text between them too
/// (a Split, "Isolated"); without, only the matches (GPT-2's ByteLevel
/// regex: `text.match(pattern)`). Empty matches add nothing.
std::vector<std::string> regex_pieces(const icu::RegexPattern& re, const std::string& text,
                                      bool gaps) {
  std::vector<std::string> out;
  auto u = to_u16(text);
  UErrorCode status = U_ZERO_ERROR;
  std::unique_ptr<icu::RegexMatcher> m(re.matcher(u, status));
  std::int32_t prev = 0;
  while (U_SUCCESS(status) && m->find(status)) {
    auto start = m->start(status), end = m->end(status);
    if (gaps && prev < start)
      out.push_back(to_u8(icu::UnicodeString(u, prev, start - prev)));
    if (end > start)
      out.push_back(to_u8(icu::UnicodeString(u, start, end - start)));
    prev = end;
  }
  if (gaps && prev < u.length())
    out.push_back(to_u8(icu::UnicodeString(u, prev)));
  return out;
}

bool is_js_space(char32_t c) {
  for (auto& r : space_ranges)
    if (c >= r.first && c <= r.last)
      return true;
  return false;
}

std::string trim_end(const std::string& s) {
  auto u = utf8_decode(s);
  while (!u.empty() && is_js_space(u.back()))
    u.pop_back();
  std::string out;
  for (auto c : u)
    utf8_append(c, out);
  return out;
}

std::string trim_start(const std::string& s) {
  auto u = utf8_decode(s);
  std::size_t k = 0;
  while (k < u.size() && is_js_space(u[k]))
    ++k;
  std::string out;
  for (std::size_t i = k; i < u.size(); ++i)
    utf8_append(u[i], out);
  return out;
}

struct added_token {
  std::string content;
  std::int32_t id = 0;
  bool special = false, normalized = false, lstrip = false, rstrip = false;
};

/// Added tokens to split on, longest first, and the bytes they start with
/// (most positions of a text start none: they are skipped at once).
struct added_dict {
  std::vector<std::string> words;
  std::bitset<256> first;
  void finish() {
    std::sort(words.begin(), words.end(), [](const std::string& a, const std::string& b) {
      return a.size() != b.size() ? a.size() > b.size() : a < b;
    });
    for (auto& w : words)
      first.set(static_cast<unsigned char>(w[0]));
  }
};

struct pre_step {
  enum kind_t { split, byte_level } kind = split;
  std::unique_ptr<icu::RegexPattern> pattern; // split
  bool add_prefix_space = false, use_regex = true; // byte_level
};

} // namespace

struct hf_tokenizer::impl {
  std::unordered_map<std::string, std::int32_t> vocab; // byte-level token -> id
  std::unordered_map<std::string, std::int32_t> ranks; // "a b" -> merge rank
  std::vector<std::string> id_to_token;                // model tokens and added ones
  std::vector<bool> id_is_added;
  std::vector<added_token> added;
  std::unordered_map<std::string, std::size_t> added_by_content;
  added_dict unnormalized, normalized; // the splitter's dictionaries
  bool ignore_merges = false;
  bool nfc = false;
  std::int32_t unk = -1;
  std::vector<pre_step> steps;
  std::unique_ptr<icu::RegexPattern> gpt2_pattern; // ByteLevel's own regex
  std::vector<std::string> byte_char;              // byte -> UTF-8 of its character
  std::unordered_map<char32_t, char> char_byte;
  std::vector<std::int32_t> doc_end, context_start;
  mutable std::unordered_map<std::string, std::vector<std::int32_t>> cache;

  std::vector<std::string> split_added(const std::string& text, const added_dict& dict) const;
  void trim_around_added(std::vector<std::string>& sections) const;
  std::vector<std::string> pre_tokenize(const std::string& text) const;
  void bpe(const std::string& piece, std::vector<std::int32_t>& out) const;
};

hf_tokenizer::hf_tokenizer() : impl_(std::make_unique<impl>()) {}
hf_tokenizer::~hf_tokenizer() = default;

std::vector<std::string> hf_tokenizer::impl::split_added(const std::string& text,
                                                         const added_dict& dict) const {
  if (dict.words.empty())
    return {text};
  std::vector<std::string> out;
  std::size_t start = 0, i = 0;
  while (i < text.size()) {
    const std::string* match = nullptr;
    if (dict.first.test(static_cast<unsigned char>(text[i])))
      for (auto& word : dict.words) // longest first: the leftmost-longest match
        if (text.compare(i, word.size(), word) == 0) {
          match = &word;
          break;
        }
    if (match != nullptr) {
      if (i > start)
        out.push_back(text.substr(start, i - start));
      out.push_back(*match);
      i += match->size();
      start = i;
    } else {
      ++i;
    }
  }
  if (start < text.size())
    out.push_back(text.substr(start));
  return out;
}

void hf_tokenizer::impl::trim_around_added(std::vector<std::string>& sections) const {
  for (std::size_t i = 0; i < sections.size(); ++i) {
    auto it = added_by_content.find(sections[i]);
    if (it == added_by_content.end())
      continue;
    auto& t = added[it->second];
    if (t.lstrip && i > 0)
      sections[i - 1] = trim_end(sections[i - 1]);
    if (t.rstrip && i + 1 < sections.size())
      sections[i + 1] = trim_start(sections[i + 1]);
  }
}

std::vector<std::string> hf_tokenizer::impl::pre_tokenize(const std::string& text) const {
  std::vector<std::string> pieces{text};
  for (auto& step : steps) {
    std::vector<std::string> next;
    for (auto& p : pieces) {
      if (step.kind == pre_step::split) {
        for (auto& s : regex_pieces(*step.pattern, p, true))
          next.push_back(std::move(s));
        continue;
      }
      auto t = p;
      if (step.add_prefix_space && t.rfind(' ', 0) != 0)
        t = " " + t;
      auto parts = step.use_regex ? regex_pieces(*gpt2_pattern, t, false) : std::vector<std::string>{t};
      for (auto& part : parts) {
        std::string mapped;
        for (unsigned char b : part)
          mapped += byte_char[b];
        next.push_back(std::move(mapped));
      }
    }
    pieces = std::move(next);
  }
  return pieces;
}

void hf_tokenizer::impl::bpe(const std::string& piece, std::vector<std::int32_t>& out) const {
  if (piece.empty())
    return;
  if (auto c = cache.find(piece); c != cache.end()) {
    out.insert(out.end(), c->second.begin(), c->second.end());
    return;
  }
  std::vector<std::int32_t> ids;
  auto emit = [&](const std::string& token) {
    auto it = vocab.find(token);
    if (it != vocab.end())
      ids.push_back(it->second);
    else if (unk >= 0)
      ids.push_back(unk);
  };
  if (ignore_merges && vocab.count(piece)) {
    emit(piece);
  } else {
    // Symbols: one per character; a doubly linked list merged in order of
    // (rank, position of the left symbol), as the reference's queue does.
    std::vector<std::string> sym;
    auto chars = utf8_decode(piece);
    for (auto ch : chars) {
      std::string s;
      utf8_append(ch, s);
      sym.push_back(std::move(s));
    }
    auto n = sym.size();
    std::vector<std::ptrdiff_t> prev(n), next(n);
    std::vector<bool> alive(n, true);
    for (std::size_t i = 0; i < n; ++i) {
      prev[i] = static_cast<std::ptrdiff_t>(i) - 1;
      next[i] = i + 1 < n ? static_cast<std::ptrdiff_t>(i + 1) : -1;
    }
    using entry = std::tuple<std::int32_t, std::size_t, std::string, std::string>; // rank, left, texts
    std::priority_queue<entry, std::vector<entry>, std::greater<>> queue;
    auto push = [&](std::size_t left) {
      if (next[left] < 0)
        return;
      auto& a = sym[left];
      auto& b = sym[static_cast<std::size_t>(next[left])];
      auto it = ranks.find(a + " " + b);
      if (it != ranks.end())
        queue.emplace(it->second, left, a, b);
    };
    for (std::size_t i = 0; i + 1 < n; ++i)
      push(i);
    while (!queue.empty()) {
      auto [rank, left, a, b] = queue.top();
      queue.pop();
      auto right = next[left];
      // Stale when either side changed since the pair was queued.
      if (!alive[left] || right < 0 || sym[left] != a || sym[static_cast<std::size_t>(right)] != b)
        continue;
      auto r = static_cast<std::size_t>(right);
      sym[left] += sym[r];
      alive[r] = false;
      next[left] = next[r];
      if (next[r] >= 0)
        prev[static_cast<std::size_t>(next[r])] = static_cast<std::ptrdiff_t>(left);
      if (prev[left] >= 0)
        push(static_cast<std::size_t>(prev[left]));
      push(left);
    }
    for (std::ptrdiff_t i = 0; i >= 0; i = next[static_cast<std::size_t>(i)])
      emit(sym[static_cast<std::size_t>(i)]);
  }
  if (piece.size() < 1024)
    cache.emplace(piece, ids);
  out.insert(out.end(), ids.begin(), ids.end());
}

std::vector<std::int32_t> hf_tokenizer::encode(std::string_view bytes) const {
  auto& m = *impl_;
  std::string text;
  for (auto c : utf8_decode(bytes))
    utf8_append(c, text);
  std::vector<std::int32_t> out;
  auto sections = m.split_added(text, m.unnormalized);
  m.trim_around_added(sections);
  for (auto& section : sections) {
    if (section.empty())
      continue;
    if (auto it = m.added_by_content.find(section); it != m.added_by_content.end()) {
      out.push_back(m.added[it->second].id);
      continue;
    }
    auto norm = section;
    if (m.nfc) {
      UErrorCode status = U_ZERO_ERROR;
      auto* nfc = icu::Normalizer2::getNFCInstance(status);
      if (U_SUCCESS(status))
        norm = to_u8(nfc->normalize(to_u16(section), status));
    }
    if (norm.empty())
      continue;
    auto subsections = m.split_added(norm, m.normalized);
    m.trim_around_added(subsections);
    for (auto& sub : subsections) {
      if (sub.empty())
        continue;
      if (auto it = m.added_by_content.find(sub); it != m.added_by_content.end()) {
        out.push_back(m.added[it->second].id);
        continue;
      }
      for (auto& piece : m.pre_tokenize(sub))
        m.bpe(piece, out);
    }
  }
  return out;
}

std::string hf_tokenizer::decode(const std::vector<std::int32_t>& ids) const {
  auto& m = *impl_;
  std::string out;
  for (auto id : ids) {
    if (id < 0 || static_cast<std::size_t>(id) >= m.id_to_token.size())
      continue;
    auto& t = m.id_to_token[static_cast<std::size_t>(id)];
    if (m.id_is_added[static_cast<std::size_t>(id)]) {
      out += t;
      continue;
    }
    for (auto c : utf8_decode(t)) {
      auto it = m.char_byte.find(c);
      if (it != m.char_byte.end())
        out += it->second;
    }
  }
  return out;
}

std::int32_t hf_tokenizer::vocab_size() const {
  return static_cast<std::int32_t>(impl_->id_to_token.size());
}

std::vector<std::int32_t> hf_tokenizer::document_end() const { return impl_->doc_end; }
std::vector<std::int32_t> hf_tokenizer::context_start() const { return impl_->context_start; }

result<std::unique_ptr<hf_tokenizer>> hf_tokenizer::load(const std::string& where) {
  namespace fs = std::filesystem;
  std::error_code ec;
  auto path = where;
  if (fs::is_directory(where, ec)) {
    path = (fs::path(where) / "tokenizer.json").string();
    if (!fs::exists(path, ec) && fs::exists(fs::path(where) / "tokenizer.model", ec))
      return error{errc::unsupported,
                   where + " holds a SentencePiece tokenizer.model and no tokenizer.json: fedsp "
                           "reads Hugging Face tokenizer.json files (byte-level BPE) only"};
  }
  if (path.size() >= 15 && path.compare(path.size() - 15, 15, "tokenizer.model") == 0)
    return error{errc::unsupported, path + ": a SentencePiece model; fedsp reads Hugging Face "
                                           "tokenizer.json files (byte-level BPE) only"};
  auto text = read_bounded_file(path, 256 * limits::MiB, "tokenizer.json");
  if (!text)
    return text.err();
  auto doc = json::parse(text.value());
  if (!doc || !doc.value().is_object())
    return error{errc::malformed, path + ": not a JSON object"};
  auto& j = doc.value();
  std::unique_ptr<hf_tokenizer> tok(new hf_tokenizer());
  auto& m = *tok->impl_;
  auto bad = [&](const std::string& what) { return error{errc::unsupported, path + ": " + what}; };
  auto type_of = [](const json* v) -> std::string {
    if (v == nullptr || !v->is_object())
      return "";
    auto* t = v->find("type");
    return t && t->is_string() ? t->as_string() : "";
  };
  auto flag = [](const json* obj, const char* key, bool fallback) {
    auto* v = obj ? obj->find(key) : nullptr;
    return v && v->is_bool() ? v->as_bool() : fallback;
  };

  // -- model: byte-level BPE ---------------------------------------------------------
  auto* model = j.find("model");
  if (type_of(model) != "BPE")
    return bad("model type '" + type_of(model) + "' is not supported (byte-level BPE is)");
  for (auto key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    auto* v = model->find(key);
    if (v && !v->is_null() && !(v->is_string() && v->as_string().empty()))
      return bad(std::string("model.") + key + " is not supported");
  }
  if (flag(model, "byte_fallback", false))
    return bad("model.byte_fallback is not supported (a SentencePiece-style BPE)");
  if (auto* d = model->find("dropout"); d && !d->is_null() && !(d->is_number() && d->as_number() == 0))
    return bad("model.dropout is not supported (encoding is deterministic)");
  m.ignore_merges = flag(model, "ignore_merges", false);
  auto* vocab = model->find("vocab");
  if (!vocab || !vocab->is_object() || vocab->as_object().empty())
    return error{errc::malformed, path + ": model.vocab is not an object of token ids"};
  std::int64_t max_id = -1;
  for (auto& [token, id] : vocab->as_object()) {
    if (!id.is_number() || id.as_number() < 0 || id.as_number() > 1e7
        || id.as_number() != static_cast<double>(static_cast<std::int64_t>(id.as_number())))
      return error{errc::malformed, path + ": model.vocab['" + token + "'] is not a token id"};
    m.vocab[token] = static_cast<std::int32_t>(id.as_number());
    max_id = std::max<std::int64_t>(max_id, static_cast<std::int64_t>(id.as_number()));
  }
  auto* merges = model->find("merges");
  if (!merges || !merges->is_array())
    return error{errc::malformed, path + ": model.merges is not a list"};
  std::int32_t rank = 0;
  for (auto& mg : merges->as_array()) {
    std::string a, b;
    if (mg.is_string()) { // "a b"
      auto sp = mg.as_string().find(' ');
      if (sp == std::string::npos)
        return error{errc::malformed, path + ": merge '" + mg.as_string() + "' has no space"};
      a = mg.as_string().substr(0, sp);
      b = mg.as_string().substr(sp + 1);
    } else if (mg.is_array() && mg.as_array().size() == 2 && mg.as_array()[0].is_string()
               && mg.as_array()[1].is_string()) { // ["a", "b"]
      a = mg.as_array()[0].as_string();
      b = mg.as_array()[1].as_string();
    } else {
      return error{errc::malformed, path + ": merge " + std::to_string(rank)
                                      + " is neither \"a b\" nor [\"a\", \"b\"]"};
    }
    m.ranks.emplace(a + " " + b, rank++); // the first occurrence ranks
  }
  if (auto* u = model->find("unk_token"); u && u->is_string())
    if (auto it = m.vocab.find(u->as_string()); it != m.vocab.end())
      m.unk = it->second;

  // -- added tokens -----------------------------------------------------------------------
  if (auto* added = j.find("added_tokens"); added && added->is_array()) {
    for (auto& a : added->as_array()) {
      auto* content = a.find("content");
      auto* id = a.find("id");
      if (!content || !content->is_string() || content->as_string().empty() || !id
          || !id->is_number() || id->as_number() < 0 || id->as_number() > 1e7)
        return error{errc::malformed, path + ": an added token without content or id"};
      added_token t;
      t.content = content->as_string();
      t.id = static_cast<std::int32_t>(id->as_number());
      t.special = flag(&a, "special", false);
      t.normalized = flag(&a, "normalized", !t.special);
      t.lstrip = flag(&a, "lstrip", false);
      t.rstrip = flag(&a, "rstrip", false);
      if (flag(&a, "single_word", false))
        return bad("added token '" + t.content + "' has single_word, which is not supported");
      max_id = std::max<std::int64_t>(max_id, t.id);
      m.added_by_content[t.content] = m.added.size();
      m.added.push_back(t);
    }
  }

  // -- normalizer -------------------------------------------------------------------------
  auto* norm = j.find("normalizer");
  std::vector<const json*> norms;
  if (norm && !norm->is_null()) {
    if (type_of(norm) == "Sequence") {
      auto* list = norm->find("normalizers");
      if (list && list->is_array())
        for (auto& n : list->as_array())
          norms.push_back(&n);
    } else {
      norms.push_back(norm);
    }
  }
  for (auto* n : norms) {
    if (type_of(n) != "NFC")
      return bad("normalizer '" + type_of(n) + "' is not supported (none or NFC is)");
    m.nfc = true;
  }
  if (m.nfc) {
    UErrorCode status = U_ZERO_ERROR;
    icu::Normalizer2::getNFCInstance(status);
    if (U_FAILURE(status))
      return error{errc::io, std::string("ICU's NFC normalizer is unavailable: ")
                               + u_errorName(status)};
  }
  for (auto& t : m.added) {
    if (t.normalized && m.nfc) {
      UErrorCode status = U_ZERO_ERROR;
      auto nc = to_u8(icu::Normalizer2::getNFCInstance(status)->normalize(to_u16(t.content), status));
      m.normalized.words.push_back(nc);
      m.added_by_content.emplace(nc, static_cast<std::size_t>(&t - m.added.data()));
    } else {
      m.unnormalized.words.push_back(t.content);
    }
  }
  m.unnormalized.finish();
  m.normalized.finish();

  // -- pre-tokenizer ----------------------------------------------------------------------
  auto* pre = j.find("pre_tokenizer");
  std::vector<const json*> pres;
  if (type_of(pre) == "Sequence") {
    auto* list = pre->find("pretokenizers");
    if (list && list->is_array())
      for (auto& p : list->as_array())
        pres.push_back(&p);
  } else if (pre && !pre->is_null()) {
    pres.push_back(pre);
  }
  bool byte_level = false;
  for (auto* p : pres) {
    auto t = type_of(p);
    pre_step step;
    if (t == "Split") {
      auto* pat = p->find("pattern");
      auto* rx = pat && pat->is_object() ? pat->find("Regex") : nullptr;
      if (!rx || !rx->is_string())
        return bad("a Split pre-tokenizer without a Regex pattern is not supported");
      auto* behavior = p->find("behavior");
      if (!behavior || !behavior->is_string() || behavior->as_string() != "Isolated")
        return bad("Split behavior '" + (behavior && behavior->is_string() ? behavior->as_string() : "?")
                   + "' is not supported (Isolated is)");
      if (flag(p, "invert", false))
        return bad("an inverted Split is not supported");
      auto translated = translate_regex(rx->as_string());
      if (!translated)
        return error{translated.err().code, path + ": " + translated.err().text};
      UErrorCode status = U_ZERO_ERROR;
      UParseError pe;
      step.pattern.reset(icu::RegexPattern::compile(to_u16(translated.value()), 0, pe, status));
      if (U_FAILURE(status))
        return bad("the Split regex does not compile (" + std::string(u_errorName(status))
                   + " at offset " + std::to_string(pe.offset) + ")");
      step.kind = pre_step::split;
    } else if (t == "ByteLevel") {
      step.kind = pre_step::byte_level;
      step.add_prefix_space = flag(p, "add_prefix_space", false);
      step.use_regex = flag(p, "use_regex", true);
      byte_level = true;
    } else {
      return bad("pre-tokenizer '" + t + "' is not supported (Split, ByteLevel, Sequence are)");
    }
    m.steps.push_back(std::move(step));
  }
  if (!byte_level)
    return bad("no ByteLevel pre-tokenizer: only byte-level BPE tokenizers are supported");
  if (auto d = type_of(j.find("decoder")); d != "ByteLevel")
    return bad("decoder '" + d + "' is not supported (ByteLevel is)");
  {
    // GPT-2's pattern, as the reference's ByteLevel writes it (a JavaScript
    // literal: \s is JavaScript's).
    auto L = letters(), N = numbers(), S = js_spaces();
    auto gpt2 = "'s|'t|'re|'ve|'m|'ll|'d|\\x{20}?[" + L + "]+|\\x{20}?[" + N + "]+|\\x{20}?[^" + S
                + L + N + "]+|[" + S + "]+(?![^" + S + "])|[" + S + "]+";
    UErrorCode status = U_ZERO_ERROR;
    UParseError pe;
    m.gpt2_pattern.reset(icu::RegexPattern::compile(to_u16(gpt2), 0, pe, status));
    if (U_FAILURE(status))
      return error{errc::io, std::string("GPT-2's pattern does not compile in ICU: ")
                               + u_errorName(status)};
  }

  // -- tables -----------------------------------------------------------------------------
  m.id_to_token.assign(static_cast<std::size_t>(max_id + 1), std::string());
  m.id_is_added.assign(static_cast<std::size_t>(max_id + 1), false);
  for (auto& [token, id] : m.vocab)
    m.id_to_token[static_cast<std::size_t>(id)] = token;
  for (auto& t : m.added) {
    m.id_to_token[static_cast<std::size_t>(t.id)] = t.content;
    m.id_is_added[static_cast<std::size_t>(t.id)] = true;
  }
  {
    auto chars = gpt2_byte_chars();
    m.byte_char.resize(256);
    for (int b = 0; b < 256; ++b) {
      auto c = chars[static_cast<std::size_t>(b)];
      utf8_append(c, m.byte_char[static_cast<std::size_t>(b)]);
      m.char_byte[c] = static_cast<char>(b);
    }
  }
  // Document end and context start: the end-of-text token, else
  // tokenizer_config.json's eos (beside the file), else a blank line; the
  // context start is its bos token, else the document end.
  auto id_of = [&](const std::string& content) -> std::int32_t {
    if (auto it = m.added_by_content.find(content); it != m.added_by_content.end())
      return m.added[it->second].id;
    if (auto it = m.vocab.find(content); it != m.vocab.end())
      return it->second;
    return -1;
  };
  std::string eos, bos;
  auto cfg_path = fs::path(path).parent_path() / "tokenizer_config.json";
  if (fs::exists(cfg_path, ec)) {
    auto cfg_text = read_bounded_file(cfg_path.string(), 64 * limits::MiB, "tokenizer_config.json");
    if (cfg_text)
      if (auto cfg = json::parse(cfg_text.value()); cfg && cfg.value().is_object()) {
        auto token = [&](const char* key) -> std::string {
          auto* v = cfg.value().find(key);
          if (v && v->is_string())
            return v->as_string();
          if (v && v->is_object())
            if (auto* c = v->find("content"); c && c->is_string())
              return c->as_string();
          return "";
        };
        eos = token("eos_token");
        bos = token("bos_token");
      }
  }
  // A document ends with the end-of-text token where there is one (a chat
  // model's configured eos, such as Qwen's <|im_end|>, ends a turn instead).
  for (auto candidate : {"<|endoftext|>", "<|end_of_text|>"})
    if (id_of(candidate) >= 0) {
      eos = candidate;
      break;
    }
  if (eos.empty() || id_of(eos) < 0)
    eos = "</s>";
  if (id_of(eos) >= 0)
    m.doc_end = {id_of(eos)};
  else
    m.doc_end = tok->encode("\n\n");
  m.context_start = !bos.empty() && id_of(bos) >= 0 ? std::vector<std::int32_t>{id_of(bos)}
                                                     : m.doc_end;
  return tok;
}

} // namespace fedsp
