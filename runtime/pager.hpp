// Client sessions paged between a compute device and host memory, least
// recently used first (compute.device_memory_gb; docs/architecture.md,
// "Devices"). No torch here: a session is an id, its size in bytes and two
// hooks that move its state off the device and back.
//
// A session is pinned while a task uses it and is never evicted then. A
// session that does not fit even alone still runs (the budget is exceeded,
// and counted). Thread-safe: workers of one device share its pager.
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <mutex>
#include <optional>
#include <unordered_map>

namespace fedsp {

class session_pager {
public:
  struct hooks {
    std::function<double()> offload; // to host memory; returns seconds
    std::function<double()> restore; // back to the device; returns seconds
  };
  struct totals {
    std::uint64_t budget_bytes = 0, peak_resident_bytes = 0;
    std::uint64_t page_ins = 0, evictions = 0, over_budget = 0;
    double page_in_seconds = 0, offload_seconds = 0;
  };

  explicit session_pager(std::uint64_t budget_bytes) { totals_.budget_bytes = budget_bytes; }

  /// Before a task: makes `id` resident (a new id is resident already: it
  /// was built on the device), evicting the least recently used unpinned
  /// others until it fits, and pins it. Returns the seconds spent bringing
  /// it back (0 when it was resident).
  double acquire(std::uint64_t id, std::uint64_t bytes, hooks h);

  /// After the task: unpins `id`; it becomes the most recently used. With
  /// `bytes_now`, its size is what it is now: a task grows a session (the
  /// gradients and optimizer moments of its first steps), and a size taken
  /// before would let the resident sessions outgrow the budget. When they
  /// do, the least recently used unpinned others are evicted at once, so
  /// the next task finds the device within its budget.
  void release(std::uint64_t id, std::optional<std::uint64_t> bytes_now = std::nullopt);

  bool resident(std::uint64_t id) const;
  totals stats() const;

private:
  /// Evicts the least recently used unpinned sessions other than `keep`
  /// until the resident ones fit the budget (the lock is held).
  void evict_until_fits(std::uint64_t incoming, std::uint64_t keep);

  struct entry {
    std::uint64_t bytes = 0;
    hooks h;
    bool resident = true;
    int pins = 0;
    std::list<std::uint64_t>::iterator lru; // in lru_ when resident
  };
  std::uint64_t resident_bytes_ = 0;
  std::unordered_map<std::uint64_t, entry> entries_;
  std::list<std::uint64_t> lru_; // resident ids, least recently used first
  totals totals_;
  mutable std::mutex mu_;
};

} // namespace fedsp
