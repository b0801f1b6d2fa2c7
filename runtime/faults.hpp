// The fault plan: what goes wrong in a run, when and to whom (the scenario's
// `faults` list; docs/faults.md). Pure data and decisions: the fault layer
// (actors/fault_layer.hpp: the links and the run driver) applies them.
//
// Each entry has a `kind` and a trigger:
//   at_s / duration_s   a window on the run clock (virtual or real seconds)
//   at_version          when that version is published (crashes)
//   probability         per message (message faults) or per task
// and, where it applies, `clients` (a list or "a-b" ranges; default all) and
// `direction` (up: client to server, down: server to client, both).
//
// Decisions are drawn from the scenario's seed and the message's identity
// (client, direction, kind, task or chunk), never from wall time, so a
// seed injects the same faults into the same messages run after run.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "runtime/error.hpp"

namespace fedsp {

enum class fault_kind {
  message_drop,      // the message is lost
  message_delay,     // held for delay_s (wall) before it goes on
  message_duplicate, // delivered twice
  message_reorder,   // held until the next message on its link has passed
  message_corrupt,   // `bytes` random bytes flipped
  partition,         // the clients' links carry nothing for the window
  client_crash,      // the client actor is killed
  client_dropout,    // the client leaves for the window (tasks lost), then rejoins
  straggler_burst,   // the clients compute `factor` times slower in the window
  aggregator_crash,  // the aggregator actor is killed (the server restarts it)
  server_crash,      // the whole server side dies; restarted from disk after restart_after_s
  worker_crash,      // worker `worker` is killed (its jobs go to another worker)
};

const char* to_string(fault_kind k);

struct fault_spec {
  fault_kind kind = fault_kind::message_drop;
  std::size_t index = 0;             // position in the plan (events name it)
  int line = -1;                     // in the scenario file
  std::set<std::uint32_t> clients;   // empty: all
  std::string direction = "both";    // up | down | both
  double at_s = 0;
  double until_s = std::numeric_limits<double>::infinity(); // at_s + duration_s
  std::optional<std::uint64_t> at_version;
  double probability = 1.0;
  double delay_s = 1.0;              // message_delay
  std::uint32_t bytes = 4;           // message_corrupt
  double factor = 10;                // straggler_burst
  double restart_after_s = 1.0;      // server_crash
  std::uint32_t worker = 1;          // worker_crash

  bool is_message_fault() const;
  /// Acts on clients or on the links to them (everything but the server
  /// side's crashes): needs the clients in the server's process.
  bool is_client_side() const;
  /// Applies to client `id`?
  bool covers(std::uint32_t id) const { return clients.empty() || clients.count(id) > 0; }
  /// Time `t` lies in the window?
  bool active_at(double t) const { return t >= at_s && t < until_s; }
  /// Applies to messages going `up` (client to server) or down?
  bool covers_direction(bool up) const {
    return direction == "both" || (direction == "up") == up;
  }
};

struct fault_plan {
  std::vector<fault_spec> faults;
  bool empty() const { return faults.empty(); }
  /// Some fault acts on the messages of a client's link (message faults,
  /// partitions, dropouts): the run puts a link between clients and server.
  bool needs_links() const;
  /// The largest message delay in the plan (0: none).
  double max_delay_s() const;
  /// client_dropout: client `id` is away at `t` (windows that apply to
  /// every task: probability 1).
  bool away(std::uint32_t id, double t) const;
  /// client_dropout: the first time in (a, b) client `id` leaves during
  /// task `task` (inf: none); a fault with a probability takes part in a
  /// task with that probability, drawn from `seed` and the task.
  double leaves_between(std::uint32_t id, double a, double b, std::uint64_t seed = 0,
                        std::uint64_t task = 0) const;
  /// straggler_burst: how many times slower client `id` computes task
  /// `task` started at `t` (1: normal); probabilities as above.
  double slowdown(std::uint32_t id, double t, std::uint64_t seed = 0,
                  std::uint64_t task = 0) const;
};

/// Parses "3", "0-4", "all" and lists of them, as a scenario writes them.
result<std::set<std::uint32_t>> parse_client_set(const std::vector<std::string>& items);

/// Does fault `f` fire for the message or task identified by `key`
/// (client, direction, kind, id: see the header)? Uniform in [0, 1) below
/// `f.probability`, drawn from `seed`, the fault's index and the key.
bool fault_fires(const fault_spec& f, std::uint64_t seed, std::uint64_t key);

/// A key from a message's identity.
std::uint64_t message_key(std::uint32_t client, bool up, std::uint32_t kind, std::uint64_t id);

} // namespace fedsp
