#include "runtime/faults.hpp"

#include <algorithm>

#include "runtime/call_syntax.hpp"
#include "runtime/rng.hpp"

namespace fedsp {

const char* to_string(fault_kind k) { return info(k).name; }

std::optional<fault_kind> fault_kind_named(const std::string& name) {
  for (auto& row : fault_kinds)
    if (name == row.name)
      return row.kind;
  return std::nullopt;
}

bool fault_spec::is_client_side() const { return info(kind).side == fault_side::client; }

bool fault_spec::is_message_fault() const { return info(kind).message; }

bool fault_plan::needs_links() const {
  return std::any_of(faults.begin(), faults.end(),
                     [](const fault_spec& f) { return info(f.kind).needs_link; });
}

double fault_plan::max_delay_s() const {
  double d = 0;
  for (auto& f : faults)
    if (f.kind == fault_kind::message_delay)
      d = std::max(d, f.delay_s);
  return d;
}

bool fault_plan::away(std::uint32_t id, double t) const {
  return std::any_of(faults.begin(), faults.end(), [&](const fault_spec& f) {
    return f.kind == fault_kind::client_dropout && f.probability >= 1.0 && f.covers(id)
           && f.active_at(t);
  });
}

double fault_plan::leaves_between(std::uint32_t id, double a, double b, std::uint64_t seed,
                                  std::uint64_t task) const {
  double first = std::numeric_limits<double>::infinity();
  for (auto& f : faults)
    if (f.kind == fault_kind::client_dropout && f.covers(id)) {
      // A window that starts during the task, or (per task) one the task
      // starts in: it leaves half-way.
      double at = f.at_s > a && f.at_s < b ? f.at_s
                  : f.probability < 1.0 && f.active_at(a) ? a + (b - a) / 2
                                                          : first;
      if (at < first && fault_fires(f, seed, message_key(id, true, 99, task)))
        first = at;
    }
  return first;
}

double fault_plan::slowdown(std::uint32_t id, double t, std::uint64_t seed,
                            std::uint64_t task) const {
  double s = 1;
  for (auto& f : faults)
    if (f.kind == fault_kind::straggler_burst && f.covers(id) && f.active_at(t)
        && fault_fires(f, seed, message_key(id, true, 98, task)))
      s *= f.factor;
  return s;
}

result<std::set<std::uint32_t>> parse_client_set(const std::vector<std::string>& items) {
  std::set<std::uint32_t> out;
  for (auto& raw : items) {
    auto item = trim(raw);
    if (item == "all")
      return std::set<std::uint32_t>{};
    auto dash = item.find('-');
    double lo = -1, hi = -1;
    bool ok = parse_number(item.substr(0, dash), lo);
    if (dash == std::string::npos)
      hi = lo;
    else
      ok = ok && parse_number(item.substr(dash + 1), hi);
    if (!ok || lo < 0 || hi < lo || hi > 1e7 || lo != static_cast<std::uint32_t>(lo)
        || hi != static_cast<std::uint32_t>(hi))
      return error{errc::bad_argument,
                   "clients: '" + item + "' is not a client id, a range a-b or all"};
    for (auto c = static_cast<std::uint32_t>(lo); c <= static_cast<std::uint32_t>(hi); ++c)
      out.insert(c);
  }
  return out;
}

std::uint64_t message_key(std::uint32_t client, bool up, std::uint32_t kind, std::uint64_t id) {
  return mix_seed(mix_seed(client, (up ? 1u : 2u) * 64 + kind), id);
}

bool fault_fires(const fault_spec& f, std::uint64_t seed, std::uint64_t key) {
  if (f.probability >= 1.0)
    return true;
  if (f.probability <= 0.0)
    return false;
  rng r(mix_seed(mix_seed(seed, 77'000 + f.index), key));
  return uniform01(r) < f.probability;
}

} // namespace fedsp
