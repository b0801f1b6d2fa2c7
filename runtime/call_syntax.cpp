#include "runtime/call_syntax.hpp"

#include <cmath>
#include <cstdlib>
#include <sstream>

namespace fedsp {

std::string trim(std::string s) {
  auto b = s.find_first_not_of(" \t");
  auto e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

bool parse_number(const std::string& text, double& out) {
  auto s = trim(text);
  char* end = nullptr;
  out = std::strtod(s.c_str(), &end);
  return !s.empty() && end == s.c_str() + s.size() && std::isfinite(out);
}

bool parse_unsigned(const std::string& text, std::uint64_t lo, std::uint64_t hi,
                    std::uint64_t& out) {
  if (text.empty() || text.size() > 20 || text.find_first_not_of("0123456789") != std::string::npos)
    return false;
  std::uint64_t v = 0;
  for (char c : text) {
    auto d = static_cast<std::uint64_t>(c - '0');
    if (v > (~std::uint64_t{0} - d) / 10)
      return false; // past 2^64 - 1
    v = v * 10 + d;
  }
  if (v < lo || v > hi)
    return false;
  out = v;
  return true;
}

bool split_call(const std::string& text, std::string& name, std::vector<std::string>& args) {
  auto s = trim(text);
  auto open = s.find('(');
  if (open == std::string::npos) {
    name = s;
    return !s.empty() && s.find(')') == std::string::npos;
  }
  if (s.back() != ')')
    return false;
  name = trim(s.substr(0, open));
  auto inner = s.substr(open + 1, s.size() - open - 2);
  std::stringstream ss(inner);
  std::string part;
  while (std::getline(ss, part, ','))
    args.push_back(trim(part));
  return true;
}

} // namespace fedsp
