// Client sessions paged between a compute device and host memory, least
// recently used first (compute.device_memory_gb; docs/architecture.md,
// "Devices"). No torch here: a session is an id, its size in bytes and two
// hooks that move its state off the device and back.
//
// A session is pinned while a task uses it and is never evicted then. A
// session that does not fit even alone still runs (the budget is exceeded,
// and counted). Thread-safe: workers of one device share its pager.
//
// Prefetch: when a task is handed to a worker, `prefetch` asks the pager's
// own thread to bring its session back ahead of time, while the worker is
// still busy with earlier tasks. It does so only if the session fits by
// evicting sessions no task is using or waiting for; the session is then
// held for that task (never evicted) until the task's `acquire` takes it.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <mutex>
#include <optional>
#include <thread>
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
    // Page-ins done ahead of their task, on the pager's thread (counted in
    // page_ins too; their time is prefetch_seconds, not page_in_seconds,
    // which is what tasks spent bringing their sessions in, waiting for a
    // prefetch still running included); and requests that found no room.
    std::uint64_t prefetched = 0, prefetch_skipped = 0;
    double prefetch_seconds = 0;
  };

  /// With `prefetch` false, `prefetch()` does nothing (compute.prefetch).
  explicit session_pager(std::uint64_t budget_bytes, bool prefetch = true)
      : prefetch_on_(prefetch) {
    totals_.budget_bytes = budget_bytes;
  }
  ~session_pager();
  session_pager(const session_pager&) = delete;
  session_pager& operator=(const session_pager&) = delete;

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

  /// A task for `id` was handed to a worker and will `acquire` it: bring
  /// the session back ahead of it, on the pager's thread, if it fits
  /// without evicting a session in use or held for another task. Returns
  /// at once. Unknown ids (a session still being built) are ignored.
  void prefetch(std::uint64_t id);
  /// The task `prefetch` announced will not run (its worker failed and no
  /// other took it): the session is no longer held for it.
  void cancel_prefetch(std::uint64_t id);
  /// Blocks until no prefetch is queued or running (tests, shutdown).
  void drain();

  bool resident(std::uint64_t id) const;
  totals stats() const;

private:
  /// Evicts the least recently used unpinned sessions other than `keep`
  /// until the resident ones fit the budget (the lock is held).
  void evict_until_fits(std::uint64_t incoming, std::uint64_t keep);
  void mover(); // the prefetch thread
  void bring_ahead(std::unique_lock<std::mutex>& lock, std::uint64_t id);

  struct entry {
    std::uint64_t bytes = 0;
    hooks h;
    bool resident = true;
    bool arriving = false; // a prefetch is restoring it (counted in resident_bytes_)
    bool held = false;     // prefetched: one of `pins` is the coming task's
    int pins = 0;
    int announced = 0; // prefetch requests whose task has not acquired it yet
    std::list<std::uint64_t>::iterator lru; // in lru_ when resident
  };
  std::uint64_t resident_bytes_ = 0;
  std::unordered_map<std::uint64_t, entry> entries_;
  std::list<std::uint64_t> lru_; // resident ids, least recently used first
  totals totals_;
  bool prefetch_on_ = true;
  std::deque<std::uint64_t> queue_; // prefetch requests for the mover
  bool moving_ = false, stopping_ = false;
  std::thread mover_; // started by the first prefetch
  std::condition_variable cv_;
  mutable std::mutex mu_;
};

} // namespace fedsp
