#include "runtime/json.hpp"

#include <charconv>

#include <cctype>
#include <cmath>
#include <cstdio>
#include <unordered_map>

#include <nlohmann/json.hpp>

namespace fedsp {

double number_at(const json& j, std::initializer_list<const char*> path) {
  const json* at = &j;
  for (auto* k : path) {
    at = at->find(k);
    if (at == nullptr)
      return NAN;
  }
  return at->is_number() ? at->as_number() : NAN;
}

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
//
// nlohmann/json's parser (Debian's nlohmann-json3-dev) reads the text and
// reports it as SAX events; `builder` turns them into this value type.
// Why not nlohmann's own value: its insertion-ordered object looks keys up
// linearly, and GPT-2's 50,257-key vocabulary took 1.9 s to read against
// 16 ms here (bench/README.md, "JSON").

namespace {

class builder : public nlohmann::json_sax<nlohmann::json> {
public:
  static constexpr std::size_t max_depth = 128;

  json root;
  std::string error;

  bool null() override { return put(json(nullptr)); }
  bool boolean(bool b) override { return put(json(b)); }
  bool number_integer(number_integer_t v) override { return put(json(static_cast<double>(v))); }
  bool number_unsigned(number_unsigned_t v) override {
    return put(json(static_cast<double>(v)));
  }
  bool number_float(number_float_t v, const string_t&) override { return put(json(v)); }
  bool string(string_t& s) override { return put(json(std::move(s))); }
  bool binary(binary_t&) override { return false; } // (JSON text has none)
  bool start_object(std::size_t) override { return open(json::object{}); }
  bool key(string_t& k) override {
    stack_.back().key = std::move(k);
    return true;
  }
  bool end_object() override { return close(); }
  bool start_array(std::size_t) override { return open(json::array{}); }
  bool end_array() override { return close(); }
  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::detail::exception& ex) override {
    std::string what = ex.what();
    if (auto at = what.find("] "); what.rfind("[json.exception", 0) == 0 && at != std::string::npos)
      what = what.substr(at + 2);
    error = what + " (offset " + std::to_string(position) + ")";
    return false;
  }

private:
  struct frame {
    json value;
    std::string key;
    // A repeated key keeps its first position and takes the last value (as
    // JSON.parse does); an index keeps large objects linear.
    std::unordered_map<std::string, std::size_t> index;
  };
  std::vector<frame> stack_;

  bool put(json v) {
    if (stack_.empty()) {
      root = std::move(v);
      return true;
    }
    auto& f = stack_.back();
    if (f.value.is_array()) {
      f.value.as_array().push_back(std::move(v));
      return true;
    }
    auto& members = f.value.as_object();
    auto [slot, fresh] = f.index.emplace(f.key, members.size());
    if (fresh)
      members.emplace_back(std::move(f.key), std::move(v));
    else
      members[slot->second].second = std::move(v);
    return true;
  }
  bool open(json v) {
    if (stack_.size() >= max_depth) {
      error = "nesting too deep (more than " + std::to_string(max_depth) + " levels)";
      return false;
    }
    stack_.push_back(frame{std::move(v), {}, {}});
    return true;
  }
  bool close() {
    auto f = std::move(stack_.back());
    stack_.pop_back();
    return put(std::move(f.value));
  }
};

/// A lone surrogate escape (\ud800 without its pair, or a stray \udc00)
/// becomes \ufffd, as JavaScript's TextEncoder writes it: JSON.stringify and
/// Python's json.dumps write them for strings cut mid-pair, and nlohmann's
/// parser refuses them. Text without "\ud" is returned untouched (`out`
/// unused).
std::string_view mend_surrogates(std::string_view s, std::string& out) {
  auto hex_at = [&](std::size_t i) {
    auto h = static_cast<unsigned char>(s[i]);
    return std::isxdigit(h) != 0;
  };
  auto surrogate_at = [&](std::size_t i, char lo, char hi) { // "\uDxyy" at i, x in [lo, hi]
    if (i + 6 > s.size() || s[i] != '\\' || (s[i + 1] != 'u') || (s[i + 2] | 0x20) != 'd')
      return false;
    auto x = static_cast<char>(s[i + 3] | 0x20);
    return x >= lo && x <= hi && hex_at(i + 4) && hex_at(i + 5);
  };
  if (s.find("\\ud") == std::string_view::npos && s.find("\\uD") == std::string_view::npos)
    return s;
  out.clear();
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    if (s[i] != '\\') {
      out += s[i++];
      continue;
    }
    bool high = surrogate_at(i, '8', 'b'), low = surrogate_at(i, 'c', 'f');
    if (high && surrogate_at(i + 6, 'c', 'f')) { // a pair: both kept
      out.append(s.substr(i, 12));
      i += 12;
    } else if (high || low) {
      out += "\\ufffd";
      i += 6;
    } else { // any other escape, kept whole (so "\\\\ud800" stays text)
      out.append(s.substr(i, std::min<std::size_t>(2, s.size() - i)));
      i += 2;
    }
  }
  return out;
}

} // namespace

result<json> json::parse(std::string_view text) {
  std::string mended;
  auto in = mend_surrogates(text, mended);
  builder b;
  if (!nlohmann::json::sax_parse(in.begin(), in.end(), &b) || !b.error.empty())
    return error{errc::malformed, "JSON: " + (b.error.empty() ? "not a document" : b.error)};
  return std::move(b.root);
}

} // namespace fedsp
