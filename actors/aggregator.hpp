// aggregator: validates updates, holds them, folds them into new prompts.
//
// Contract:
//   (open, task_expectation)  from the server: an update for this task may come.
//   (version, current, bound, s) from the server: the published version, the
//                             staleness bound (0: none) updates are held to and
//                             the staleness function that weights them.
//   Update envelope           forwarded by the server when the clock reaches
//                             it: answered with Ack or Reject.
//   (close, aggregate_request) from the server: close a round's tasks (sync)
//                             and fold every accepted update not yet
//                             aggregated (runtime/strategy.hpp).
//
// Every inbound Update is checked before it touches state: decodable, an
// update, a known and open task, the task's client, sender name matching,
// base version of the task, not staler than the bound, prompt layout equal
// to the model's, finite, not a second update for the task. A failure is a
// typed Reject plus a `reject` event; accepted updates are `update` events.
// Each accepted update is folded into exactly one aggregate, or reported as
// pending at the end of the run.
//
// Durability (docs/faults.md): with a log folder, an accepted update is
// appended to the write-ahead log (its delta, and its prompts when kept)
// before the Ack goes out; a log that cannot be written turns the update
// into a Reject (`io`) and leaves the state as it was. When a close folds or
// discards everything held, the log moves to its next segment and the
// outcome names the consumed one; the server deletes consumed segments once
// its checkpoint of the new version is on disk. Records of an earlier
// process (`replay`) are held again at spawn, as if just accepted.
#pragma once

#include <map>
#include <set>
#include <variant>

#include "actors/wire.hpp"
#include "runtime/durable.hpp"

namespace fedsp {

using aggregator_actor = caf::typed_actor<
  caf::reacts_to<open_atom, task_expectation>,
  caf::reacts_to<version_atom, std::uint64_t, std::uint32_t, staleness_fn>,
  caf::replies_to<wire_buffer>::with<wire_buffer>,
  caf::replies_to<close_atom, aggregate_request>::with<aggregate_outcome>>;

struct aggregator_options {
  std::string wal_dir;             // "": no write-ahead log
  bool sync_each = false;          // fdatasync each record before its Ack
  staleness_fn staleness{staleness_fn::kind::sqrt}; // weights replayed updates
  std::vector<std::string> replay; // log records to hold again (read_log)
  double max_update_ratio = 0;     // refuse |u| > ratio |b| (outlier); 0: no bound
  std::uint32_t max_refused_in_a_row = 0; // stop the run after so many bad updates; 0: never
};

/// Log records (docs/faults.md, *Durability*): a base the tasks' prompts
/// were (its prompts, once per log segment that needs it, under an id) and
/// each accepted update as it came (its wire bytes) with what the aggregator
/// knew of it. Replaying them redoes the same arithmetic as accepting it.
struct wal_base {
  std::uint64_t id = 0;
  prompt_set prompts;
};
struct wal_update {
  std::uint32_t round = 0;
  std::uint64_t staleness = 0;
  std::uint64_t base = 0; // a wal_base id; 0: the task had no base
  bool keep = false;      // the task kept its prompts (fedasync, local-only)
  update_msg update;
};
using wal_entry = std::variant<wal_base, wal_update>;
/// Errors name what is wrong (`malformed`).
result<wal_entry> parse_wal_record(std::string_view bytes);
/// How many of `records` are updates (the rest carry the bases they refer to).
std::size_t logged_updates(const std::vector<std::string>& records);

struct aggregator_state {
  struct open_task {
    task_expectation expect;
    bool answered = false;
  };
  /// An accepted update not yet folded: its facts, and its prompts only
  /// when the task asked for them to be kept; otherwise they went straight
  /// into `sum` (memory per update: a few numbers).
  struct held_update {
    std::uint64_t task_id = 0;
    std::uint32_t client_id = 0;
    std::uint32_t round = 0;
    std::uint64_t staleness = 0;
    double num_samples = 0;
    std::shared_ptr<const prompt_set> base;
    std::optional<prompt_set> prompts;
    metric_list metrics;
  };
  std::map<std::uint64_t, open_task> open;     // task id -> expectation
  std::set<std::uint64_t> closed;              // tasks of closed rounds
  std::set<std::uint64_t> replayed;            // tasks whose updates the log replayed:
                                               // never opened again
  std::vector<held_update> held;               // accepted, not yet folded
  fold_accumulator sum;                        // their weighted deltas
  std::uint64_t version = 0;                   // the current published version
  std::uint32_t max_staleness = 0;             // 0: no bound
  staleness_fn staleness{staleness_fn::kind::sqrt}; // weights deltas as they arrive
  std::unique_ptr<record_log> wal;             // accepted updates (none: no log)
  std::uint64_t wal_consumed = 0;              // segments folded or discarded
  // Bases logged in the current segment, by address (held, so that an
  // address is not reused for another base meanwhile), with their ids.
  std::map<const prompt_set*, std::pair<std::shared_ptr<const prompt_set>, std::uint64_t>>
    wal_bases;
  std::uint64_t next_base_id = 0;              // (starts at a random 64-bit value)
  // The norms of the bases updates were last measured against, most
  // recent first: one base serves a whole round or version, and async
  // updates of a few stale versions interleave. Weak, so a base is freed
  // with its last task; an expired one never matches a new base.
  std::vector<std::pair<std::weak_ptr<const prompt_set>, double>> base_norms;
  static constexpr std::size_t base_norms_kept = 8;
  std::uint32_t refused_in_a_row = 0; // bad updates since the last accepted one
  static inline const char* name = "aggregator";
};

/// `layout` is the model's prompt layout every update must match.
aggregator_actor::behavior_type
aggregator(aggregator_actor::stateful_pointer<aggregator_state> self, context_ptr ctx,
           prompt_set layout, aggregator_options opts);

} // namespace fedsp
