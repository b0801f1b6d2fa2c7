#include "runtime/pager.hpp"

#include <algorithm>

namespace fedsp {

double session_pager::acquire(std::uint64_t id, std::uint64_t bytes, hooks h) {
  std::lock_guard<std::mutex> lock(mu_);
  auto [it, fresh] = entries_.try_emplace(id);
  auto& e = it->second;
  if (fresh) {
    e.bytes = bytes;
    e.h = std::move(h);
    e.resident = false; // counted in below, without a restore
  }
  double seconds = 0;
  if (!e.resident) {
    // Evict the least recently used unpinned sessions until this one fits.
    evict_until_fits(e.bytes, id);
    if (resident_bytes_ + e.bytes > totals_.budget_bytes)
      ++totals_.over_budget;
    if (!fresh) {
      seconds = e.h.restore();
      ++totals_.page_ins;
      totals_.page_in_seconds += seconds;
    }
    e.resident = true;
    resident_bytes_ += e.bytes;
    e.lru = lru_.insert(lru_.end(), id);
    totals_.peak_resident_bytes = std::max(totals_.peak_resident_bytes, resident_bytes_);
  }
  ++e.pins;
  return seconds;
}

void session_pager::evict_until_fits(std::uint64_t incoming, std::uint64_t keep) {
  for (auto v = lru_.begin(); v != lru_.end() && resident_bytes_ + incoming > totals_.budget_bytes;) {
    auto& victim = entries_.at(*v);
    if (victim.pins > 0 || *v == keep) {
      ++v;
      continue;
    }
    totals_.offload_seconds += victim.h.offload();
    victim.resident = false;
    resident_bytes_ -= victim.bytes;
    ++totals_.evictions;
    v = lru_.erase(v);
  }
}

void session_pager::release(std::uint64_t id, std::optional<std::uint64_t> bytes_now) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end())
    return;
  auto& e = it->second;
  if (e.pins > 0)
    --e.pins;
  if (!e.resident)
    return;
  lru_.splice(lru_.end(), lru_, e.lru); // most recently used now
  if (bytes_now && *bytes_now != e.bytes) {
    resident_bytes_ = resident_bytes_ - e.bytes + *bytes_now;
    e.bytes = *bytes_now;
    totals_.peak_resident_bytes = std::max(totals_.peak_resident_bytes, resident_bytes_);
    evict_until_fits(0, id);
  }
}

bool session_pager::resident(std::uint64_t id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(id);
  return it != entries_.end() && it->second.resident;
}

session_pager::totals session_pager::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return totals_;
}

} // namespace fedsp
