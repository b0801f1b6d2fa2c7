// A small JSON value: enough for events.jsonl, summary.json and JSONL data
// files. Objects keep insertion order so written files read top to bottom in
// the order the code builds them. Text is read by nlohmann/json's parser
// (json.cpp says why the value is not nlohmann's own) and written here, in
// the format the event logs keep: numbers to 9 significant digits,
// integers exactly, non-finite numbers as null.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "runtime/error.hpp"

namespace fedsp {

class json {
public:
  using array = std::vector<json>;
  using object = std::vector<std::pair<std::string, json>>;

  // -- construction ------------------------------------------------------------

  json() = default;                                   // null
  json(std::nullptr_t) {}                             // NOLINT
  json(bool b) : v_(b) {}                             // NOLINT
  json(double d) : v_(d) {}                           // NOLINT
  json(int i) : v_(static_cast<double>(i)) {}         // NOLINT
  json(unsigned i) : v_(static_cast<double>(i)) {}    // NOLINT
  json(long i) : v_(static_cast<double>(i)) {}        // NOLINT
  json(unsigned long i) : v_(static_cast<double>(i)) {} // NOLINT
  json(long long i) : v_(static_cast<double>(i)) {}   // NOLINT
  json(unsigned long long i) : v_(static_cast<double>(i)) {} // NOLINT
  json(const char* s) : v_(std::string(s)) {}         // NOLINT
  json(std::string s) : v_(std::move(s)) {}           // NOLINT
  json(array a) : v_(std::move(a)) {}                 // NOLINT
  json(object o) : v_(std::move(o)) {}                // NOLINT

  // -- queries -----------------------------------------------------------------

  bool is_null() const { return v_.index() == 0; }
  bool is_bool() const { return v_.index() == 1; }
  bool is_number() const { return v_.index() == 2; }
  bool is_string() const { return v_.index() == 3; }
  bool is_array() const { return v_.index() == 4; }
  bool is_object() const { return v_.index() == 5; }

  bool as_bool() const { return std::get<bool>(v_); }
  double as_number() const { return std::get<double>(v_); }
  const std::string& as_string() const { return std::get<std::string>(v_); }
  const array& as_array() const { return std::get<array>(v_); }
  array& as_array() { return std::get<array>(v_); }
  const object& as_object() const { return std::get<object>(v_); }
  object& as_object() { return std::get<object>(v_); }

  /// Member of an object, or nullptr when absent or not an object.
  const json* find(std::string_view key) const;

  /// Appends (or replaces) a member; turns null into an object first.
  json& set(std::string key, json value);

  // -- text --------------------------------------------------------------------

  /// Compact single-line JSON. Non-finite numbers are written as null.
  std::string dump() const;
  void dump_to(std::string& out) const;

  /// Parses one JSON document; trailing non-space characters are an error.
  static result<json> parse(std::string_view text);

private:
  std::variant<std::nullptr_t, bool, double, std::string, array, object> v_;
};

/// The number at `path` (a key per level) in `j`; NaN when a key is absent
/// or the value is not a number.
double number_at(const json& j, std::initializer_list<const char*> path);

/// Escapes a string for inclusion in JSON (without the surrounding quotes).
void json_escape(std::string_view in, std::string& out);

} // namespace fedsp
