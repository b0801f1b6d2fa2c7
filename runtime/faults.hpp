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

/// Every fault kind, described once; every list of kinds (the scenario's
/// names, which crash, which need a link, which act on messages, which a
/// resumed run must not fire again) is derived from this table. Adding a
/// kind: its enum value, its row here (in enum order: checked below), its
/// injection where `injected_by` says, its row in docs/faults.md, a test.
enum class fault_side { client, server };

struct fault_kind_info {
  fault_kind kind;
  const char* name;        // in scenarios and events
  fault_side side;         // client: acts on clients or the links to them
  bool crash;              // fires once, at at_s or at_version; not again after a resume
  bool message;            // acts on single messages on a client's link
  bool window;             // needs duration_s (a window from at_s)
  bool needs_link;         // the run puts a link between clients and server
  const char* injected_by; // where (docs/faults.md "Where faults are injected")
};

inline constexpr fault_kind_info fault_kinds[] = {
  //  kind                          name                 side                crash  msg    window link
  {fault_kind::message_drop,      "message_drop",      fault_side::client, false, true,  false, true,  "link"},
  {fault_kind::message_delay,     "message_delay",     fault_side::client, false, true,  false, true,  "link"},
  {fault_kind::message_duplicate, "message_duplicate", fault_side::client, false, true,  false, true,  "link"},
  {fault_kind::message_reorder,   "message_reorder",   fault_side::client, false, true,  false, true,  "link"},
  {fault_kind::message_corrupt,   "message_corrupt",   fault_side::client, false, true,  false, true,  "link"},
  {fault_kind::partition,         "partition",         fault_side::client, false, false, true,  true,  "link"},
  {fault_kind::client_crash,      "client_crash",      fault_side::client, true,  false, false, false, "run driver"},
  {fault_kind::client_dropout,    "client_dropout",    fault_side::client, false, false, true,  true,  "link and server timeline"},
  {fault_kind::straggler_burst,   "straggler_burst",   fault_side::client, false, false, true,  false, "server timeline and link"},
  {fault_kind::aggregator_crash,  "aggregator_crash",  fault_side::server, true,  false, false, false, "run driver"},
  {fault_kind::server_crash,      "server_crash",      fault_side::server, true,  false, false, false, "run driver"},
  {fault_kind::worker_crash,      "worker_crash",      fault_side::server, true,  false, false, false, "run driver"},
};

inline constexpr std::size_t fault_kind_count = sizeof fault_kinds / sizeof fault_kinds[0];

constexpr bool fault_table_in_enum_order() {
  for (std::size_t i = 0; i < fault_kind_count; ++i)
    if (static_cast<std::size_t>(fault_kinds[i].kind) != i)
      return false;
  return fault_kind_count == static_cast<std::size_t>(fault_kind::worker_crash) + 1;
}
static_assert(fault_table_in_enum_order(),
              "fault_kinds must list every fault_kind once, in enum order");

/// The row of `k`.
constexpr const fault_kind_info& info(fault_kind k) {
  return fault_kinds[static_cast<std::size_t>(k)];
}

/// The kind named `name` (as scenarios and events write it), if any.
std::optional<fault_kind> fault_kind_named(const std::string& name);

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
