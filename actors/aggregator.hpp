// aggregator: validates updates, records them, aggregates a round (FedAvg).
//
// Contract:
//   (open, task_expectation)  from the server: an update for this task may come.
//   Update envelope           from a client: answered with Ack or Reject.
//   (close, round, min)       from the server: aggregate the round's accepted
//                             updates if there are at least `min`; the round's
//                             tasks are closed either way.
//
// Every inbound Update is checked before it touches state: decodable, an
// update, a known and open task, the task's client, sender name matching,
// base version of the task, prompt layout equal to the model's, finite, not a
// second update for the task. A failure is a typed Reject plus a `reject`
// event; accepted updates are `update` events and are reported to the server.
#pragma once

#include <map>
#include <set>

#include "actors/wire.hpp"

namespace fedsp {

using aggregator_actor = caf::typed_actor<
  caf::reacts_to<open_atom, task_expectation>,
  caf::replies_to<wire_buffer>::with<wire_buffer>,
  caf::replies_to<close_atom, std::uint32_t, std::uint32_t>::with<aggregate_outcome>>;

struct aggregator_state {
  struct open_task {
    task_expectation expect;
    bool answered = false;
  };
  struct accepted_update {
    std::uint64_t task_id;
    std::uint32_t round;
    update_msg update;
  };
  std::map<std::uint64_t, open_task> open;     // task id -> expectation
  std::set<std::uint64_t> closed;              // tasks of closed rounds
  std::vector<accepted_update> accepted;       // not yet aggregated
  static inline const char* name = "aggregator";
};

/// `server` is notified (accepted, task) / (rejected, task); `layout` is the
/// model's prompt layout every update must match.
aggregator_actor::behavior_type
aggregator(aggregator_actor::stateful_pointer<aggregator_state> self,
           context_ptr ctx, caf::actor server, prompt_set layout);

} // namespace fedsp
