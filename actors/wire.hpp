// What actors exchange, and what every actor is handed at spawn.
//
// Federation messages travel as one registered CAF type, `fedsp::wire_buffer`
// (runtime/codec.hpp): a word-aligned Cap'n Proto message, the same bytes in
// one process and across machines. Messages between an actor and its own
// worker (jobs, reports) and between co-located server-side actors stay in
// process and are declared unsafe-but-local below: they never cross machines.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <spdlog/logger.h>

#include "models/prompt_model.hpp"
#include "runtime/clock.hpp"
#include "runtime/codec.hpp"
#include "runtime/events.hpp"
#include "runtime/message_dump.hpp"

namespace fedsp {

/// CAF serialisation of the wire type: the words as they are.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, wire_buffer& x) {
  return f(caf::meta::type_name("fedsp::wire_buffer"), x.words);
}

// -- atoms ---------------------------------------------------------------------

using run_atom = caf::atom_constant<caf::atom("run")>;
using train_atom = caf::atom_constant<caf::atom("train")>;
using eval_atom = caf::atom_constant<caf::atom("eval")>;
using open_atom = caf::atom_constant<caf::atom("open")>;
using close_atom = caf::atom_constant<caf::atom("close")>;
using accepted_atom = caf::atom_constant<caf::atom("accepted")>;
using rejected_atom = caf::atom_constant<caf::atom("rejected")>;
using timeout_atom = caf::atom_constant<caf::atom("timeout")>;
using aggregator_atom = caf::atom_constant<caf::atom("aggregator")>;

// -- in-process messages ---------------------------------------------------------

using example_list = std::shared_ptr<const std::vector<mc_example>>;

struct train_job {
  prompt_set prompts;
  example_list data;
  train_params params;
};

struct train_outcome {
  bool ok = false;
  train_report report;
  error err;
  double seconds = 0; // wall time of the job on the worker
};

struct eval_job {
  prompt_set prompts;
  example_list data;
};

struct eval_outcome {
  bool ok = false;
  eval_report report;
  error err;
};

/// The server tells the aggregator which update to expect for a task.
struct task_expectation {
  std::uint64_t task_id = 0;
  std::uint32_t client_id = 0;
  std::uint64_t base_version = 0;
  std::uint32_t round = 0;
};

/// The aggregator's answer when the server closes a round. Failures are
/// data: `has_result` false means "no aggregate: keep the previous version".
struct aggregate_outcome {
  bool has_result = false;
  prompt_set prompts;                 // version 0: the server stamps it
  std::vector<std::uint64_t> updates; // ids of the updates folded in
  double mean_loss_before = 0;        // over those updates
  double mean_loss_after = 0;
  std::string note;                   // why there is no result
};

// -- run context -----------------------------------------------------------------

/// Shared by every actor of a run; built by run_federation (no globals).
struct run_context {
  event_log* events = nullptr;               // events.jsonl
  const run_clock* clock = nullptr;          // the `t` of every event
  message_dump* dump = nullptr;              // optional --dump-messages
  std::shared_ptr<spdlog::logger> log;       // human-readable log lines

  double now() const { return clock->now(); }

  /// Appends one event to events.jsonl.
  void event(const std::string& type, const json& fields) const {
    if (events != nullptr)
      events->write(type, now(), fields);
  }

  /// Encodes a message for sending (and dumps it when asked to).
  wire_buffer seal(const envelope& env) const {
    auto buf = encode(env);
    if (dump != nullptr)
      dump->write(kind_name(env.body), env.sender, buf);
    return buf;
  }
};

using context_ptr = std::shared_ptr<const run_context>;

/// "client-<id>": the sender name a client uses in its envelopes.
inline std::string client_name(std::uint32_t id) {
  return "client-" + std::to_string(id);
}

} // namespace fedsp

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(fedsp::train_job)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(fedsp::train_outcome)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(fedsp::eval_job)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(fedsp::eval_outcome)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(fedsp::task_expectation)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(fedsp::aggregate_outcome)
