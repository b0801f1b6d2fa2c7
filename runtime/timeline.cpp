#include "runtime/timeline.hpp"

#include <algorithm>
#include <cmath>

namespace fedsp {

timeline::entry_id timeline::add(double at, std::uint64_t tag, bool job) {
  if (!(at >= now())) // also catches NaN
    at = now();
  auto id = ++next_id_;
  key k{at, id};
  queue_.emplace(k, entry{id, at, tag, job});
  where_.emplace(id, k);
  return id;
}

timeline::entry_id timeline::schedule(double at, std::uint64_t tag) {
  return add(at, tag, false);
}

timeline::entry_id timeline::expect(double at, std::uint64_t tag) {
  return add(at, tag, true);
}

std::optional<error> timeline::complete(entry_id id) {
  auto it = where_.find(id);
  if (it == where_.end())
    return error{errc::unknown_task, "no pending job " + std::to_string(id)};
  if (!queue_.at(it->second).job)
    return error{errc::duplicate, "entry " + std::to_string(id) + " is an event, not a job"};
  if (!done_.insert(id).second)
    return error{errc::duplicate, "job " + std::to_string(id) + " already completed"};
  return std::nullopt;
}

bool timeline::cancel(entry_id id) {
  auto it = where_.find(id);
  if (it == where_.end())
    return false;
  queue_.erase(it->second);
  done_.erase(id);
  where_.erase(it);
  return true;
}

bool timeline::blocked() const {
  if (queue_.empty())
    return false;
  auto& e = queue_.begin()->second;
  return e.job && done_.count(e.id) == 0;
}

std::optional<double> timeline::earliest() const {
  if (queue_.empty())
    return std::nullopt;
  return queue_.begin()->second.at;
}

std::optional<timeline::entry> timeline::next() {
  if (queue_.empty() || blocked())
    return std::nullopt;
  auto e = queue_.begin()->second;
  queue_.erase(queue_.begin());
  where_.erase(e.id);
  done_.erase(e.id);
  now_.store(std::max(now(), e.at), std::memory_order_relaxed);
  return e;
}

} // namespace fedsp
