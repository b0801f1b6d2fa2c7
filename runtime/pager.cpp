#include "runtime/pager.hpp"

#include <algorithm>
#include <chrono>

namespace fedsp {

session_pager::~session_pager() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (mover_.joinable())
    mover_.join();
}

double session_pager::acquire(std::uint64_t id, std::uint64_t bytes, hooks h) {
  std::unique_lock<std::mutex> lock(mu_);
  auto [it, fresh] = entries_.try_emplace(id);
  auto& e = it->second; // (stays valid: entries are never erased)
  if (fresh) {
    e.bytes = bytes;
    e.h = std::move(h);
    e.resident = false; // counted in below, without a restore
  }
  if (e.announced > 0)
    --e.announced; // this is the task a prefetch was asked for
  double seconds = 0;
  if (e.arriving) { // its prefetch is running: the task waits for it
    auto start = std::chrono::steady_clock::now();
    cv_.wait(lock, [&] { return !e.arriving; });
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    totals_.page_in_seconds += seconds;
  }
  if (e.held) { // prefetched for this task: its hold becomes the task's pin
    e.held = false;
    return seconds;
  }
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

void session_pager::prefetch(std::uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!prefetch_on_ || stopping_)
    return;
  auto it = entries_.find(id);
  if (it == entries_.end())
    return;
  ++it->second.announced;
  queue_.push_back(id);
  if (!mover_.joinable())
    mover_ = std::thread([this] { mover(); });
  cv_.notify_all();
}

void session_pager::cancel_prefetch(std::uint64_t id) {
  std::unique_lock<std::mutex> lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end())
    return;
  auto& e = it->second;
  if (e.announced > 0)
    --e.announced;
  cv_.wait(lock, [&] { return !e.arriving; });
  if (e.held && e.announced == 0) {
    e.held = false;
    --e.pins;
  }
}

void session_pager::drain() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return stopping_ || (queue_.empty() && !moving_); });
}

void session_pager::mover() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (stopping_)
      return;
    auto id = queue_.front();
    queue_.pop_front();
    moving_ = true;
    bring_ahead(lock, id);
    moving_ = false;
    cv_.notify_all();
  }
}

void session_pager::bring_ahead(std::unique_lock<std::mutex>& lock, std::uint64_t id) {
  auto it = entries_.find(id);
  if (it == entries_.end())
    return;
  auto& e = it->second;
  // Its task took it already, or it is there (or on its way).
  if (e.announced == 0 || e.resident || e.arriving)
    return;
  // Room: only sessions no task uses or waits for may go. Otherwise the
  // task pages it in itself, as without prefetch.
  std::uint64_t movable = 0;
  for (auto v : lru_) {
    auto& other = entries_.at(v);
    if (other.pins == 0)
      movable += other.bytes;
  }
  if (resident_bytes_ - movable + e.bytes > totals_.budget_bytes) {
    ++totals_.prefetch_skipped;
    return;
  }
  evict_until_fits(e.bytes, id);
  e.arriving = true;
  e.held = true;
  ++e.pins;
  resident_bytes_ += e.bytes;
  totals_.peak_resident_bytes = std::max(totals_.peak_resident_bytes, resident_bytes_);
  lock.unlock(); // the copy runs while workers acquire and release others
  auto seconds = e.h.restore();
  lock.lock();
  e.arriving = false;
  e.resident = true;
  e.lru = lru_.insert(lru_.end(), id);
  ++totals_.page_ins;
  ++totals_.prefetched;
  totals_.prefetch_seconds += seconds;
  cv_.notify_all();
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
