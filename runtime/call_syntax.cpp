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
