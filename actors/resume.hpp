// What an interrupted run left in its directory, read back for `fedsp
// resume` (and a server_crash fault's restart) and held to the durability
// contract (docs/faults.md "The durability contract").
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "runtime/durable.hpp"
#include "runtime/error.hpp"
#include "runtime/json.hpp"

namespace fedsp {

/// `j[key]` if it is a number, else `fallback`.
inline double number_or(const json& j, const char* key, double fallback) {
  auto* v = j.find(key);
  return v != nullptr && v->is_number() ? v->as_number() : fallback;
}

/// What an interrupted run left: its last checkpoint, the log records after
/// it, the task ids already used and the versions already announced.
struct resume_point {
  std::optional<checkpoint_data> ck;
  std::vector<std::string> replay;
  std::vector<std::string> notes;
  std::uint64_t first_task = 0;
  std::set<double> published;
  std::set<std::size_t> fired; // crash faults already fired (events.jsonl)
  std::size_t torn = 0;        // torn log tails dropped
  std::vector<std::uint64_t> lost; // acknowledged updates the log no longer
                                   // holds (--salvage goes on without them)
};

/// Up to ten task ids for a message, then how many in all.
std::string task_list(const std::vector<std::uint64_t>& ids);

/// Reads what an interrupted run left and holds it to the durability
/// contract: every update the run acknowledged (its `update` event, written
/// before the Ack) is folded into a published version, discarded with its
/// round, or still in the log. What is not, the log lost (damaged, truncated,
/// deleted): refused, or with `salvage` recorded as lost. A log that holds
/// one task twice, a checkpoint older than the versions events.jsonl
/// announced, or a missing events.jsonl is refused.
result<resume_point> read_resume_point(const std::string& dir, bool salvage);

} // namespace fedsp
