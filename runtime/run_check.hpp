// Checks a run directory against the invariants a federation must keep
// whatever faults it met (docs/faults.md "Invariants"), from its
// events.jsonl and summary.json alone (`fedsp check <run-dir>`):
//
//   versions     publish events name versions that go up by one each time
//   at most once every task id is folded into at most one published version
//                (the publish event's `updates`)
//   no loss      every accepted update (an `update` event, or an
//                `update_replayed` one after a restart) is folded into a
//                published version, or is among those the run reports as
//                pending or discarded with a failed round
//   complete     summary.json exists and its final version is the last
//                published one
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/error.hpp"

namespace fedsp {

struct run_check {
  std::vector<std::string> violations; // empty: every invariant holds
  std::uint64_t versions = 0;          // publish events
  std::uint64_t last_version = 0;
  std::uint64_t accepted = 0;          // distinct accepted updates
  std::uint64_t folded = 0;            // distinct updates in publish events
  std::uint64_t unfolded = 0;          // accepted, in no publish event
  std::uint64_t allowed_unfolded = 0;  // pending + discarded, per the run
  std::uint64_t faults = 0;            // fault events
  std::uint64_t resumes = 0;           // resumed events
  bool finished = false;               // summary.json present
  bool ok() const { return violations.empty(); }
};

/// Errors: no events.jsonl in `dir` (`io`).
result<run_check> check_run(const std::string& dir);

} // namespace fedsp
