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

#include <functional>
#include <map>
#include <mutex>

#include "models/federated.hpp"
#include "runtime/clock.hpp"
#include "runtime/codec.hpp"
#include "runtime/events.hpp"
#include "runtime/message_dump.hpp"
#include "runtime/strategy.hpp"

namespace fedsp {

/// The largest wire_buffer a peer may announce (1 GiB): a length beyond it
/// is refused before anything is allocated for it.
inline constexpr std::size_t max_wire_words = (std::size_t{1} << 30) / 8;

/// CAF serialisation of the wire type. Across machines (CAF's serializer
/// and deserializer) the words go as one block of bytes: a Cap'n Proto
/// message is little-endian in memory on every host, so its bytes are its
/// wire form, and CAF's element-by-element path for a vector of integers
/// capped large updates at about 95 MB/s (bench/README.md, *Between
/// processes*). Other inspectors (to_string) see the words.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, wire_buffer& x) {
  if constexpr (std::is_base_of<caf::serializer, Inspector>::value) {
    // Shared segments go right behind the words: the peer reads one flat
    // message, the same bytes as `x.flatten()` would hold.
    auto n = x.size_bytes() / 8;
    if (n > max_wire_words) // (CAF would also cut its length to 32 bits)
      return caf::make_error(caf::sec::invalid_argument,
                             "a fedsp::wire_buffer of " + std::to_string(n)
                               + " words is not sent; at most "
                               + std::to_string(max_wire_words) + " are taken");
    auto pieces = [&]() -> caf::error {
      if (!x.words.empty())
        if (auto err = f.apply_raw(x.words.size() * 8, x.words.data()))
          return err;
      for (auto& s : x.shared)
        if (auto err = f.apply_raw(s.words * 8, const_cast<std::uint64_t*>(s.data)))
          return err;
      return caf::none;
    };
    return caf::error::eval([&] { return f.begin_sequence(n); }, pieces,
                            [&] { return f.end_sequence(); });
  } else if constexpr (std::is_base_of<caf::deserializer, Inspector>::value) {
    std::size_t n = 0;
    return caf::error::eval(
      [&] { return f.begin_sequence(n); },
      [&]() -> caf::error {
        if (n > max_wire_words)
          return caf::make_error(caf::sec::invalid_argument,
                                 "a fedsp::wire_buffer of " + std::to_string(n)
                                   + " words is announced; at most "
                                   + std::to_string(max_wire_words) + " are taken");
        x.words.resize(n);
        return n > 0 ? f.apply_raw(n * 8, x.words.data()) : caf::none;
      },
      [&] { return f.end_sequence(); });
  } else {
    return f(caf::meta::type_name("fedsp::wire_buffer"), x.words);
  }
}

// -- atoms ---------------------------------------------------------------------

using run_atom = caf::atom_constant<caf::atom("run")>;
using train_atom = caf::atom_constant<caf::atom("train")>;
using eval_atom = caf::atom_constant<caf::atom("eval")>;
using open_atom = caf::atom_constant<caf::atom("open")>;
using close_atom = caf::atom_constant<caf::atom("close")>;
using timeout_atom = caf::atom_constant<caf::atom("timeout")>;
using retry_atom = caf::atom_constant<caf::atom("retry")>;
using aggregator_atom = caf::atom_constant<caf::atom("aggregator")>;
using version_atom = caf::atom_constant<caf::atom("version")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;
using hello_atom = caf::atom_constant<caf::atom("hello")>;

// -- in-process messages ---------------------------------------------------------

/// Work for a worker: a closure run on the worker's thread (torch calls
/// block). It writes its results into state the requester shares with it;
/// the reply (wall seconds) says it is done. The worker passes its device
/// ("cpu", "cuda:N"): a client's session moves there before it trains.
struct compute_job {
  std::function<void(const std::string& device)> run;
};

/// The server tells the aggregator which update to expect for a task.
struct task_expectation {
  std::uint64_t task_id = 0;
  std::uint32_t client_id = 0;
  std::uint64_t base_version = 0;
  std::uint32_t round = 0;                      // sync rounds; 0 in async mode
  std::shared_ptr<const prompt_set> base;       // the prompts the task carries
  bool keep_prompts = false; // the aggregator keeps the update's prompts
                             // (fedasync mixes them one by one; local-only
                             // hands each back); else only their running sum
};

/// The server asks the aggregator to fold what it holds into new prompts
/// (runtime/strategy.hpp). Sync: `round`'s tasks are closed first unless
/// late updates are kept for the next round; every accepted update not yet
/// aggregated is folded in, weighted by its staleness against `version`.
struct aggregate_request {
  std::uint32_t round = 0;        // sync: the round being closed; 0: none
  bool close_round = true;        // its open tasks are closed (late = dropped)
  std::uint32_t min_updates = 1;  // fewer: no aggregate
  std::uint64_t version = 0;      // the current version
  std::shared_ptr<const prompt_set> current; // ... and its prompts (the server's own)
  std::string strategy = "fedavg"; // fedavg | fedbuff | fedasync
  staleness_fn staleness;
  double eta = 1.0;               // fedavg / fedbuff server rate
  double alpha = 0.5;             // fedasync
};

/// The aggregator's answer when the server closes a round. Failures are
/// data: `has_result` false means "no aggregate: keep the previous version".
struct aggregate_outcome {
  bool has_result = false;
  prompt_set prompts;                 // FedAvg (version 0: the server stamps it)
  std::vector<std::uint64_t> updates; // ids of the updates folded in
  std::vector<std::uint64_t> staleness; // ... and their staleness
  std::size_t discarded = 0;          // accepted updates dropped with a failed round
  std::size_t held = 0;               // accepted updates still waiting to be folded
  std::uint64_t wal_consumed = 0;     // log segments now folded or discarded (0: none)
  std::vector<std::pair<std::uint32_t, prompt_set>> per_client; // local-only
  double mean_loss_before = 0;        // over those updates
  double mean_loss_after = 0;
  double mean_train_seconds = 0;      // client compute per task: measured
  double mean_flops = 0;              // ... and estimated
  std::string note;                   // why there is no result
};

// -- run context -----------------------------------------------------------------

class traffic_meter;

/// Shared by every actor of a run; built by run_federation (no globals).
struct run_context {
  event_log* events = nullptr;               // events.jsonl
  const run_clock* clock = nullptr;          // the `t` of every event
  message_dump* dump = nullptr;              // optional --dump-messages
  std::shared_ptr<spdlog::logger> log;       // human-readable log lines
  traffic_meter* traffic = nullptr;          // bytes per client and direction
  bool virtual_time = false;                 // clock is the server's timeline: only
                                             // actors it awaits write events
  // Sees every event as it is written (the fault driver's triggers).
  std::function<void(const std::string& type, double t, const json& fields)> observe;

  double now() const { return clock->now(); }

  // The run must stop (run_federation sets it). `errc::io`: a durable
  // write failed (the log, a checkpoint, events.jsonl: a full disk), and
  // the run stops cleanly, resumable once the cause is fixed (docs/faults.md
  // "The durability contract"). Another code: the federation itself cannot
  // go on (federation.max_refused_in_a_row), and resuming would stop the
  // same way. Never writes an event.
  std::function<void(const std::string& what, errc code)> write_failed;

  /// Appends one event to events.jsonl; with `now`, it is in the kernel's
  /// hands before this returns (see event_log::write).
  void event(const std::string& type, const json& fields, bool now = false) const {
    auto t = this->now();
    if (events != nullptr)
      events->write(type, t, fields, now);
    if (observe)
      observe(type, t, fields);
  }

  /// Stops the run, saying why (see write_failed).
  void stop_on(const std::string& what, errc code = errc::io) const {
    if (log)
      log->error("{}", what);
    if (write_failed)
      write_failed(what, code);
  }

  /// Encodes a message for sending (and dumps it when asked to).
  wire_buffer seal(const envelope& env) const {
    auto buf = encode(env);
    if (dump != nullptr)
      dump->write(kind_name(env.body), env.sender, buf);
    return buf;
  }
  /// The same, taking the envelope: its prompts are referenced by the
  /// message, not copied (codec.hpp, encode).
  wire_buffer seal(envelope&& env) const {
    auto kind = kind_name(env.body);
    auto sender = env.sender;
    auto buf = encode(std::move(env));
    if (dump != nullptr)
      dump->write(kind, sender, buf);
    return buf;
  }
};

using context_ptr = std::shared_ptr<const run_context>;

/// Bytes a client received from and sent to the federation, counted where
/// the messages are sealed and opened. Thread-safe.
class traffic_meter {
public:
  struct totals_t {
    std::uint64_t to_client = 0;   // prompts, tasks, control (not the model)
    std::uint64_t from_client = 0; // updates, joins
    std::uint64_t model = 0;       // the model shipped once, in chunks
  };
  void to_client(std::uint32_t id, std::size_t bytes) { add(id, bytes, 0, 0); }
  void from_client(std::uint32_t id, std::size_t bytes) { add(id, 0, bytes, 0); }
  void model_to_client(std::uint32_t id, std::size_t bytes) { add(id, 0, 0, bytes); }
  std::map<std::uint32_t, totals_t> totals() const {
    std::lock_guard<std::mutex> g(mtx_);
    return totals_;
  }

private:
  void add(std::uint32_t id, std::size_t down, std::size_t up, std::size_t model) {
    std::lock_guard<std::mutex> g(mtx_);
    auto& t = totals_[id];
    t.to_client += down;
    t.from_client += up;
    t.model += model;
  }
  mutable std::mutex mtx_;
  std::map<std::uint32_t, totals_t> totals_;
};

/// "client-<id>": the sender name a client uses in its envelopes.
inline std::string client_name(std::uint32_t id) {
  return "client-" + std::to_string(id);
}

} // namespace fedsp

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(fedsp::compute_job)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(fedsp::task_expectation)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(fedsp::aggregate_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(fedsp::staleness_fn)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(fedsp::aggregate_outcome)
