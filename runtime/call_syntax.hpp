// The small "name(arg, arg)" syntax scenario values use: distributions
// (runtime/profile.hpp) and staleness functions (runtime/strategy.hpp).
#pragma once

#include <string>
#include <vector>

namespace fedsp {

/// Without surrounding spaces, tabs and carriage returns.
std::string trim(std::string s);

/// A whole, finite number (surrounding spaces allowed).
bool parse_number(const std::string& text, double& out);

/// "name(a, b)" -> name, ["a", "b"] (trimmed); a bare word -> name, [].
/// False for empty text or unbalanced parentheses.
bool split_call(const std::string& text, std::string& name, std::vector<std::string>& args);

} // namespace fedsp
