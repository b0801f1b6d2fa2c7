// The virtual clock: discrete events delivered strictly in (time, sequence)
// order (docs/architecture.md "The clock").
//
// Two kinds of entries:
// - an *event* is known when it is scheduled (a round deadline, a client
//   going offline): it can be delivered as soon as it is the earliest;
// - a *job* is real work running elsewhere (a client's task on a worker)
//   whose virtual finish time is modelled when it starts. It can only be
//   delivered once its result has arrived (`complete`); until then it blocks
//   every later entry, so what is delivered never depends on how fast the
//   machine or how many workers there are.
//
// The sequence number breaks ties between entries at the same time: first
// scheduled, first delivered. `now()` is the time of the last delivered entry
// and never goes backwards. One owner mutates it (the server actor); others
// may read `now()`.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "runtime/clock.hpp"
#include "runtime/error.hpp"

namespace fedsp {

class timeline final : public run_clock {
public:
  using entry_id = std::uint64_t;

  struct entry {
    entry_id id = 0;
    double at = 0;            // virtual seconds
    std::uint64_t tag = 0;    // the owner's meaning (task id, deadline, ...)
    bool job = false;
  };

  /// An event at `at` (clamped to now: nothing is scheduled in the past).
  entry_id schedule(double at, std::uint64_t tag);

  /// A job that finishes at `at`; it blocks later entries until completed.
  entry_id expect(double at, std::uint64_t tag);

  /// The job's result arrived. Errors: unknown id (`unknown_task`), not a
  /// job or already completed (`duplicate`).
  std::optional<error> complete(entry_id id);

  /// Removes an entry that will never be delivered (e.g. a task whose
  /// client dropped out). Returns false if there is none.
  bool cancel(entry_id id);

  /// Moves the clock forward to `t` (a resumed run starts at its
  /// checkpoint's time); never backwards.
  void start_at(double t) { now_.store(t > now() ? t : now(), std::memory_order_relaxed); }

  /// Pops the earliest entry if it may be delivered now (an event, or a
  /// completed job), advancing the clock to its time.
  std::optional<entry> next();

  /// The earliest entry is a job still running.
  bool blocked() const;

  /// Entries not yet delivered (events and jobs).
  std::size_t pending() const { return queue_.size(); }

  /// Time of the earliest entry, if any.
  std::optional<double> earliest() const;

  /// The time of the last delivered entry (seconds since the run started).
  /// Safe to read from other threads (actors stamping their events).
  double now() const override { return now_.load(std::memory_order_relaxed); }

private:
  using key = std::pair<double, entry_id>; // (time, sequence)
  entry_id add(double at, std::uint64_t tag, bool job);

  std::atomic<double> now_{0.0};
  entry_id next_id_ = 0;
  std::map<key, entry> queue_;
  std::map<entry_id, key> where_;
  std::set<entry_id> done_; // completed jobs not yet delivered
};

} // namespace fedsp
