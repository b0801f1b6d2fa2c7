#include "cli/flags.hpp"

#include "runtime/call_syntax.hpp"

namespace fedsp::cli {

std::string arguments::get(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() || it->second.empty() || it->second.back().empty()
           ? fallback
           : it->second.back();
}

std::vector<std::string> arguments::all(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

std::optional<std::string> arguments::parse(const std::string& cmd, const flag_spec& spec,
                                            const std::vector<std::string>& args,
                                            arguments& out) {
  out = arguments{};
  out.cmd_ = cmd;
  auto see = " (see 'fedsp " + cmd + " --help')";
  for (std::size_t i = 0; i < args.size(); ++i) {
    auto& a = args[i];
    if (a.size() > 1 && a[0] == '-') {
      const flag* f = nullptr;
      for (auto& k : spec.flags)
        if (k.name == a)
          f = &k;
      if (f == nullptr)
        return cmd + ": unknown option '" + a + "'" + see;
      auto& slot = out.values_[a];
      if (!slot.empty() && !f->repeatable)
        return cmd + ": " + a + " given twice";
      if (!f->takes_value) {
        slot.emplace_back();
        continue;
      }
      if (i + 1 >= args.size())
        return cmd + ": " + a + " needs a value";
      slot.push_back(args[++i]);
    } else if (out.positional_.size() < spec.positional) {
      out.positional_.push_back(a);
    } else if (spec.positional == 0) {
      return cmd + ": unexpected argument '" + a + "'" + see;
    } else {
      return cmd + ": more than one " + spec.what + " given ('" + out.positional_.back() + "', '"
             + a + "')";
    }
  }
  return std::nullopt;
}

std::optional<std::string> arguments::integer(const std::string& name, std::uint64_t lo,
                                              std::uint64_t hi, std::uint64_t& out) const {
  if (!has(name))
    return std::nullopt;
  auto v = get(name);
  if (!parse_unsigned(v, lo, hi, out))
    return cmd_ + ": " + name + " needs an integer in [" + std::to_string(lo) + ", "
           + std::to_string(hi) + "], got '" + v + "'";
  return std::nullopt;
}

std::optional<std::string> arguments::real(const std::string& name, double& out) const {
  if (!has(name))
    return std::nullopt;
  auto v = get(name);
  double x = 0;
  if (!parse_number(v, x))
    return cmd_ + ": " + name + " needs a number, got '" + v + "'";
  out = x;
  return std::nullopt;
}

} // namespace fedsp::cli
