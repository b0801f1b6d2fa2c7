// The fault layer (docs/faults.md): faults are injected between actors, not
// by special cases inside them.
//
// link: stands between one client and the server when the plan has message
// faults, partitions or dropouts. To the server it is the client (Join comes
// from it, Tasks go to it); to the client it is the server. Every message
// passing through is checked against the plan: dropped, held (delay,
// reorder), sent twice, or sent with flipped bytes; in a partition or a
// client_dropout window nothing passes. Join, Welcome and Shutdown pass
// untouched (a lost Join would only stall the start). The link is linked
// to its client: when the client dies, so does the link, and the server
// sees the client go down. On the real clock a straggler_burst holds a
// client's Updates back for (factor - 1) times the time it took to train.
//
// run_driver: asks the server to run, fires the plan's crash faults
// (client, aggregator, worker; a server crash ends this process's part and
// is reported to run_federation, which restarts from disk), and reports how
// the run ended. Triggers: at_version when the `publish` event of that
// version is written, at_s when the run clock passes it.
//
// Every injected fault is a `fault` event and is counted in summary.json.
#pragma once

#include <condition_variable>
#include <mutex>
#include <set>

#include "actors/client.hpp"
#include "actors/worker.hpp"
#include "runtime/faults.hpp"

namespace fedsp {

using release_atom = caf::atom_constant<caf::atom("release")>;
using fire_atom = caf::atom_constant<caf::atom("fire")>;
using observe_atom = caf::atom_constant<caf::atom("observe")>;

struct link_config {
  std::uint32_t client = 0;
  caf::actor server;
  std::shared_ptr<const fault_plan> plan;
  std::uint64_t seed = 0;
  double reorder_hold_s = 0.5; // the longest a reordered message waits
};

struct link_state {
  struct held {
    wire_buffer buf;
    bool up = true;
    caf::response_promise reply; // up requests: the client's
  };
  caf::actor client;                 // learned from the first message up
  std::map<std::uint64_t, held> holding; // delayed or reordered
  std::uint64_t next_hold = 0;
  std::optional<std::uint64_t> reorder_up, reorder_down; // waiting for the next message
  std::map<std::uint64_t, std::chrono::steady_clock::time_point> task_arrived; // bursts
  std::uint64_t heartbeats = 0;      // sequence: the key of heartbeat decisions
  static inline const char* name = "link";
};

caf::behavior link(caf::stateful_actor<link_state>* self, context_ptr ctx, link_config cfg);

/// How a run ended, from the driver to run_federation's thread.
class run_outcome {
public:
  enum class kind { running, finished, failed, server_crash };
  struct value_t {
    kind k = kind::running;
    std::string summary;       // finished
    std::string error;         // failed
    std::size_t fault = 0;     // server_crash: which
    double restart_after_s = 0;
    errc code = errc::io;      // failed: what kind of failure
  };
  void set(value_t v) {
    std::lock_guard<std::mutex> g(mtx_);
    if (v_.k != kind::running)
      return; // the first outcome stands
    v_ = std::move(v);
    cv_.notify_all();
  }
  value_t wait() {
    std::unique_lock<std::mutex> g(mtx_);
    cv_.wait(g, [&] { return v_.k != kind::running; });
    return v_;
  }

private:
  std::mutex mtx_;
  std::condition_variable cv_;
  value_t v_;
};

struct driver_config {
  caf::actor server;
  std::vector<caf::actor> clients;     // by id: the client actors (crash targets)
  std::vector<worker_actor> workers;
  std::shared_ptr<const fault_plan> plan;
  std::set<std::size_t> fired;         // crash faults that already fired (a resumed run)
  std::shared_ptr<run_outcome> outcome;
  bool virtual_time = true;
};

caf::behavior run_driver(caf::event_based_actor* self, context_ptr ctx, driver_config cfg);

} // namespace fedsp
