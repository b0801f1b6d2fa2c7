#include "runtime/json.hpp"

#include <charconv>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <unordered_map>

namespace fedsp {

const json* json::find(std::string_view key) const {
  if (!is_object())
    return nullptr;
  for (auto& [k, v] : as_object())
    if (k == key)
      return &v;
  return nullptr;
}

json& json::set(std::string key, json value) {
  if (is_null())
    v_ = object{};
  auto& obj = as_object();
  for (auto& [k, v] : obj)
    if (k == key) {
      v = std::move(value);
      return *this;
    }
  obj.emplace_back(std::move(key), std::move(value));
  return *this;
}

void json_escape(std::string_view in, std::string& out) {
  for (unsigned char c : in) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
}

void json::dump_to(std::string& out) const {
  switch (v_.index()) {
    case 0: out += "null"; break;
    case 1: out += as_bool() ? "true" : "false"; break;
    case 2: {
      double d = as_number();
      if (!std::isfinite(d)) {
        out += "null";
      } else if (d == std::floor(d) && std::fabs(d) < 9.007199254740992e15) {
        char buf[32];
        auto r = std::to_chars(buf, buf + sizeof buf, static_cast<long long>(d));
        out.append(buf, r.ptr);
      } else { // as printf's %.9g, several times faster
        char buf[32];
        auto r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::general, 9);
        out.append(buf, r.ptr);
      }
      break;
    }
    case 3:
      out += '"';
      json_escape(as_string(), out);
      out += '"';
      break;
    case 4: {
      out += '[';
      bool first = true;
      for (auto& x : as_array()) {
        if (!first)
          out += ',';
        first = false;
        x.dump_to(out);
      }
      out += ']';
      break;
    }
    case 5: {
      out += '{';
      bool first = true;
      for (auto& [k, v] : as_object()) {
        if (!first)
          out += ',';
        first = false;
        out += '"';
        json_escape(k, out);
        out += "\":";
        v.dump_to(out);
      }
      out += '}';
      break;
    }
  }
}

std::string json::dump() const {
  std::string out;
  dump_to(out);
  return out;
}

// -- parser --------------------------------------------------------------------

namespace {

class parser {
public:
  explicit parser(std::string_view s) : s_(s) {}

  result<json> document() {
    auto v = value(0);
    if (!v)
      return v;
    skip_ws();
    if (pos_ != s_.size())
      return fail("trailing characters");
    return v;
  }

private:
  static constexpr int max_depth = 128;

  error fail(const std::string& what) const {
    return error{errc::malformed,
                 "JSON: " + what + " at offset " + std::to_string(pos_)};
  }

  void skip_ws() {
    while (pos_ < s_.size()
           && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n'
               || s_[pos_] == '\r'))
      ++pos_;
  }

  bool literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) == word) {
      pos_ += word.size();
      return true;
    }
    return false;
  }

  result<json> value(int depth) {
    if (depth > max_depth)
      return fail("nesting too deep");
    skip_ws();
    if (pos_ >= s_.size())
      return fail("unexpected end");
    char c = s_[pos_];
    if (c == '{')
      return obj(depth);
    if (c == '[')
      return arr(depth);
    if (c == '"') {
      auto s = str();
      if (!s)
        return s.err();
      return json(std::move(s).value());
    }
    if (literal("true"))
      return json(true);
    if (literal("false"))
      return json(false);
    if (literal("null"))
      return json(nullptr);
    return number();
  }

  result<json> number() {
    size_t start = pos_;
    if (pos_ < s_.size() && s_[pos_] == '-')
      ++pos_;
    while (pos_ < s_.size()
           && (std::isdigit(static_cast<unsigned char>(s_[pos_]))
               || s_[pos_] == '.' || s_[pos_] == 'e' || s_[pos_] == 'E'
               || s_[pos_] == '+' || s_[pos_] == '-'))
      ++pos_;
    if (start == pos_ || (pos_ == start + 1 && s_[start] == '-'))
      return fail("unexpected character");
    std::string tok(s_.substr(start, pos_ - start));
    char* end = nullptr;
    double d = std::strtod(tok.c_str(), &end);
    if (end != tok.c_str() + tok.size())
      return fail("bad number '" + tok + "'");
    return json(d);
  }

  static void put_utf8(uint32_t cp, std::string& out) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  result<uint32_t> hex4() {
    if (pos_ + 4 > s_.size())
      return fail("short \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      char h = s_[pos_++];
      v <<= 4;
      if (h >= '0' && h <= '9')
        v |= static_cast<uint32_t>(h - '0');
      else if (h >= 'a' && h <= 'f')
        v |= static_cast<uint32_t>(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F')
        v |= static_cast<uint32_t>(h - 'A' + 10);
      else
        return fail("bad \\u escape");
    }
    return v;
  }

  result<std::string> str() {
    ++pos_; // opening quote
    std::string out;
    while (pos_ < s_.size()) {
      char c = s_[pos_++];
      if (c == '"')
        return out;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= s_.size())
        break;
      char e = s_[pos_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          auto cp = hex4();
          if (!cp)
            return cp.err();
          uint32_t v = cp.value();
          // A high surrogate followed by a low one is one code point; a lone
          // surrogate becomes U+FFFD, as JavaScript's TextEncoder writes it.
          if (v >= 0xD800 && v <= 0xDBFF && s_.substr(pos_, 2) == "\\u") {
            auto save = pos_;
            pos_ += 2;
            auto lo = hex4();
            if (!lo)
              return lo.err();
            if (lo.value() >= 0xDC00 && lo.value() <= 0xDFFF)
              v = 0x10000 + ((v - 0xD800) << 10) + (lo.value() - 0xDC00);
            else
              pos_ = save; // the next escape stands on its own
          }
          put_utf8(v >= 0xD800 && v <= 0xDFFF ? 0xFFFD : v, out);
          break;
        }
        default: return fail("bad escape");
      }
    }
    return fail("unterminated string");
  }

  result<json> arr(int depth) {
    ++pos_;
    json::array out;
    skip_ws();
    if (pos_ < s_.size() && s_[pos_] == ']') {
      ++pos_;
      return json(std::move(out));
    }
    for (;;) {
      auto v = value(depth + 1);
      if (!v)
        return v;
      out.push_back(std::move(v).value());
      skip_ws();
      if (pos_ < s_.size() && s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < s_.size() && s_[pos_] == ']') {
        ++pos_;
        return json(std::move(out));
      }
      return fail("expected ',' or ']'");
    }
  }

  result<json> obj(int depth) {
    ++pos_;
    json out = json::object{};
    std::unordered_map<std::string, std::size_t> index;
    skip_ws();
    if (pos_ < s_.size() && s_[pos_] == '}') {
      ++pos_;
      return out;
    }
    for (;;) {
      skip_ws();
      if (pos_ >= s_.size() || s_[pos_] != '"')
        return fail("expected a key");
      auto k = str();
      if (!k)
        return k.err();
      skip_ws();
      if (pos_ >= s_.size() || s_[pos_] != ':')
        return fail("expected ':'");
      ++pos_;
      auto v = value(depth + 1);
      if (!v)
        return v;
      // A repeated key keeps its first position and takes the last value
      // (as JSON.parse does); an index keeps large objects linear.
      auto& members = out.as_object();
      auto [slot, fresh] = index.emplace(k.value(), members.size());
      if (fresh)
        members.emplace_back(std::move(k).value(), std::move(v).value());
      else
        members[slot->second].second = std::move(v).value();
      skip_ws();
      if (pos_ < s_.size() && s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < s_.size() && s_[pos_] == '}') {
        ++pos_;
        return out;
      }
      return fail("expected ',' or '}'");
    }
  }

  std::string_view s_;
  size_t pos_ = 0;
};

} // namespace

result<json> json::parse(std::string_view text) {
  return parser(text).document();
}

} // namespace fedsp
