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
    for (auto v = lru_.begin(); v != lru_.end() && resident_bytes_ + e.bytes > totals_.budget_bytes;) {
      auto& victim = entries_.at(*v);
      if (victim.pins > 0) {
        ++v;
        continue;
      }
      totals_.offload_seconds += victim.h.offload();
      victim.resident = false;
      resident_bytes_ -= victim.bytes;
      ++totals_.evictions;
      v = lru_.erase(v);
    }
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

void session_pager::release(std::uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end())
    return;
  auto& e = it->second;
  if (e.pins > 0)
    --e.pins;
  if (e.resident) // most recently used now
    lru_.splice(lru_.end(), lru_, e.lru);
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
