#include "runtime/profile.hpp"
#include "runtime/call_syntax.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace fedsp {

namespace {

namespace fs = std::filesystem;

std::string anchor(const std::string& path, const std::string& base_dir) {
  fs::path p(path);
  if (p.is_relative() && !base_dir.empty())
    p = fs::path(base_dir) / p;
  return p.lexically_normal().string();
}

std::string range_text(double lo, double hi) {
  std::ostringstream o;
  o << "[" << lo << ", " << hi << "]";
  return o.str();
}

} // namespace

double normal01(rng& r) {
  double u1 = uniform01(r);
  double u2 = uniform01(r);
  if (u1 < 1e-300)
    u1 = 1e-300;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

std::vector<double> distribution::sample(std::uint32_t count, std::uint64_t seed) const {
  std::vector<double> out(count, 0.0);
  rng r(seed);
  switch (k) {
    case kind::constant:
      std::fill(out.begin(), out.end(), args.at(0));
      break;
    case kind::uniform:
      for (auto& v : out)
        v = args[0] + (args[1] - args[0]) * uniform01(r);
      break;
    case kind::lognormal:
      for (auto& v : out)
        v = std::clamp(std::exp(args[0] + args[1] * normal01(r)), lo, hi);
      break;
    case kind::tiers: {
      std::vector<std::uint32_t> order(count);
      for (std::uint32_t i = 0; i < count; ++i)
        order[i] = i;
      shuffle(order, r);
      std::size_t at = 0;
      double cum = 0;
      for (std::size_t t = 0; t < tiers.size(); ++t) {
        cum += tiers[t].first;
        auto end = t + 1 == tiers.size()
                     ? count
                     : std::min<std::size_t>(count, static_cast<std::size_t>(
                                                      std::llround(cum * count)));
        for (; at < end; ++at)
          out[order[at]] = tiers[t].second;
      }
      break;
    }
    case kind::trace:
      for (std::uint32_t i = 0; i < count; ++i)
        out[i] = trace[i % trace.size()];
      break;
  }
  return out;
}

result<distribution> parse_distribution(const std::string& text, double lo, double hi,
                                        const std::string& base_dir) {
  auto forms = "must be a number, constant(v), uniform(lo, hi), lognormal(mu, sigma), "
               "tiers(share=value, ...) or trace(file), values in "
               + range_text(lo, hi);
  auto bad = [&](const std::string& why) {
    return error{errc::bad_argument, "'" + text + "' " + why};
  };
  distribution d;
  d.lo = lo;
  d.hi = hi;
  double v;
  if (parse_number(text, v)) {
    if (v < lo || v > hi)
      return bad("is out of range " + range_text(lo, hi));
    d.args = {v};
    return d;
  }
  std::string name;
  std::vector<std::string> args;
  if (!split_call(text, name, args))
    return bad(forms);
  std::vector<double> nums;
  auto numbers = [&]() {
    nums.clear();
    for (auto& a : args) {
      double x;
      if (!parse_number(a, x))
        return false;
      nums.push_back(x);
    }
    return true;
  };
  if (name == "constant") {
    if (!numbers() || nums.size() != 1)
      return bad("constant takes one number");
    if (nums[0] < lo || nums[0] > hi)
      return bad("is out of range " + range_text(lo, hi));
    d.args = nums;
  } else if (name == "uniform") {
    if (!numbers() || nums.size() != 2 || nums[0] > nums[1])
      return bad("uniform takes two numbers lo <= hi");
    if (nums[0] < lo || nums[1] > hi)
      return bad("is out of range " + range_text(lo, hi));
    d.k = distribution::kind::uniform;
    d.args = nums;
  } else if (name == "lognormal") {
    if (!numbers() || nums.size() != 2 || nums[1] < 0)
      return bad("lognormal takes mu and sigma >= 0");
    d.k = distribution::kind::lognormal;
    d.args = nums;
  } else if (name == "tiers") {
    d.k = distribution::kind::tiers;
    double total = 0;
    for (auto& a : args) {
      auto colon = a.find('=');
      double share, value;
      if (colon == std::string::npos || !parse_number(a.substr(0, colon), share)
          || !parse_number(a.substr(colon + 1), value) || share <= 0)
        return bad("tiers takes 'share=value' pairs with shares > 0, got '" + a + "'");
      if (value < lo || value > hi)
        return bad("tier value " + trim(a.substr(colon + 1)) + " is out of range "
                   + range_text(lo, hi));
      d.tiers.emplace_back(share, value);
      total += share;
    }
    if (d.tiers.empty() || std::abs(total - 1.0) > 1e-6)
      return bad("tier shares must sum to 1");
  } else if (name == "trace") {
    if (args.size() != 1 || args[0].empty())
      return bad("trace takes one file name");
    d.k = distribution::kind::trace;
    d.trace_path = anchor(args[0], base_dir);
    std::ifstream in(d.trace_path);
    if (!in)
      return error{errc::io, "trace file '" + d.trace_path + "' cannot be read"};
    std::string line;
    for (int n = 1; std::getline(in, line); ++n) {
      auto s = trim(line.substr(0, line.find('#')));
      if (s.empty())
        continue;
      if (!parse_number(s, v) || v < lo || v > hi)
        return error{errc::bad_argument, d.trace_path + ":" + std::to_string(n) + ": '" + s
                                           + "' is not a number in " + range_text(lo, hi)};
      d.trace.push_back(v);
    }
    if (d.trace.empty())
      return error{errc::bad_argument, "trace file '" + d.trace_path + "' has no values"};
  } else {
    return bad(forms);
  }
  return d;
}

bool availability::online(std::uint32_t client, double t, std::uint64_t draw,
                          std::uint64_t seed) const {
  switch (k) {
    case kind::always:
      return true;
    case kind::probability: {
      rng r(mix_seed(mix_seed(seed, 7'000'000 + client), draw));
      return uniform01(r) < p;
    }
    case kind::trace: {
      auto it = windows.find(client);
      if (it == windows.end())
        return true;
      for (auto& [a, b] : it->second)
        if (t >= a && t < b)
          return true;
      return false;
    }
  }
  return true;
}

double availability::offline_at(std::uint32_t client, double t) const {
  if (k != kind::trace)
    return std::numeric_limits<double>::infinity();
  auto it = windows.find(client);
  if (it == windows.end())
    return std::numeric_limits<double>::infinity();
  for (auto& [a, b] : it->second)
    if (t >= a && t < b)
      return b;
  return t;
}

result<availability> parse_availability(const std::string& text, const std::string& base_dir) {
  auto bad = error{errc::bad_argument,
                   "'" + text + "' must be always, probability(p) with 0 < p <= 1, or trace(file)"};
  std::string name;
  std::vector<std::string> args;
  if (!split_call(text, name, args))
    return bad;
  availability a;
  if (name == "always" && args.empty())
    return a;
  if (name == "probability" && args.size() == 1) {
    if (!parse_number(args[0], a.p) || a.p <= 0 || a.p > 1)
      return bad;
    a.k = availability::kind::probability;
    return a;
  }
  if (name != "trace" || args.size() != 1)
    return bad;
  a.k = availability::kind::trace;
  a.trace_path = anchor(args[0], base_dir);
  std::ifstream in(a.trace_path);
  if (!in)
    return error{errc::io, "availability trace '" + a.trace_path + "' cannot be read"};
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    auto s = trim(line.substr(0, line.find('#')));
    if (s.empty())
      continue;
    std::stringstream ss(s);
    std::string c, b, e, extra;
    double start, end, id;
    ss >> c >> b >> e;
    if (!(ss >> extra) && parse_number(c, id) && id >= 0 && id == std::floor(id)
        && parse_number(b, start) && parse_number(e, end) && start >= 0 && end > start) {
      a.windows[static_cast<std::uint32_t>(id)].emplace_back(start, end);
      continue;
    }
    return error{errc::bad_argument, a.trace_path + ":" + std::to_string(n) + ": '" + s
                                       + "' must be 'client start end' with 0 <= start < end"};
  }
  for (auto& [id, w] : a.windows)
    std::sort(w.begin(), w.end());
  return a;
}

} // namespace fedsp
