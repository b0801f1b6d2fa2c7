// The small "name(arg, arg)" syntax scenario values use: distributions
// (runtime/profile.hpp) and staleness functions (runtime/strategy.hpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace fedsp {

/// Without surrounding spaces, tabs and carriage returns.
std::string trim(std::string s);

/// A whole, finite number (surrounding spaces allowed).
bool parse_number(const std::string& text, double& out);

/// Decimal digits only, a value in [lo, hi]: false (out untouched) for
/// anything else, including values past 2^64 - 1. Never throws.
bool parse_unsigned(const std::string& text, std::uint64_t lo, std::uint64_t hi,
                    std::uint64_t& out);

/// "name(a, b)" -> name, ["a", "b"] (trimmed); a bare word -> name, [].
/// False for empty text or unbalanced parentheses.
bool split_call(const std::string& text, std::string& name, std::vector<std::string>& args);

} // namespace fedsp
