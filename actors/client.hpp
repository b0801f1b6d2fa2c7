// client: one federation participant with private data.
//
//   joining --Welcome + ModelChunks (CRC-checked)--> building session (worker)
//      --> ready --Task--> training (worker) --> submitting --Ack/Reject--> ready
//   A Task that arrives while the session is being built waits for it.
//   Shutdown in any phase: quit.
//
// The client receives the model it trains on once (the auxiliary model for
// FedSP, the global one for FedPrompt), in chunks checked against the
// announced size and CRC-32. For each Task it checks the task is its own and
// the prompts fit the announced layout, runs its round on a worker, and sends
// the Update to the server (whose clock hands it to the aggregator). Only prompts (plus counts and metrics) leave
// the client; its data and its copy of the model never do.
//
// Liveness: every federation.silence_s / 4 wall seconds, while it holds
// tasks, the client sends a Heartbeat listing them (its ticks come from the
// process's pulse, below). A model whose chunks
// stop coming for silence_s (a lost chunk) breaks the client: its tasks are
// refused. A job whose worker dies goes to the next worker (`spares`);
// when none is left, the task is refused.
#pragma once

#include "runtime/pager.hpp"

#include <atomic>
#include <chrono>
#include <optional>
#include <set>

#include "actors/aggregator.hpp"
#include "actors/worker.hpp"

namespace fedsp {

using client_actor = caf::typed_actor<caf::reacts_to<wire_buffer>, caf::reacts_to<tick_atom>>;

struct client_config {
  std::uint32_t id = 0;
  std::shared_ptr<const std::vector<mc_example>> data; // private training split
  std::shared_ptr<const scenario> sc;                  // method and training settings
  caf::actor server;                                   // receives Join and Update
  worker_actor worker;                                 // runs the training
  std::vector<worker_actor> spares;  // tried in turn when `worker` dies mid-job
  std::shared_ptr<struct pulse_board> board; // the process's beat (spawn_pulse);
  std::size_t slot = 0;                      // this client's flag on it. None:
                                             // a timer of the client's own
  std::shared_ptr<session_pager> pager;      // compute.device_memory_gb, else none
};

/// The clients of a process wanting a tick, one flag each. A client that
/// wants one sets its flag: no message and no timer of its own (arming a
/// CAF timer wakes CAF's clock thread: 15 µs an update at 100,000 clients).
struct pulse_board {
  explicit pulse_board(std::size_t n) : wants(n) {}
  std::vector<std::atomic<bool>> wants;
};

/// One timer for all the clients of a process: every `beat` it ticks each
/// client whose flag is set, once, and clears the flag (a client still
/// watching sets it again from its tick). `clients[i]` owns flag i.
caf::actor spawn_pulse(caf::actor_system& sys, std::chrono::microseconds beat,
                       std::shared_ptr<pulse_board> board, std::vector<caf::actor> clients);

/// The clients' beat for a scenario: federation.silence_s / 4.
std::chrono::microseconds client_beat(const scenario& sc);

struct client_state {
  prompt_set layout;          // from Welcome
  bool welcomed = false;
  model_assembler model;      // chunks of the model being received
  std::set<std::uint32_t> chunks_seen; // (a chunk delivered twice is ignored)
  std::optional<error> broken; // the model transfer failed: tasks are refused
  bool building = false;      // the session is being built on the worker
  std::shared_ptr<client_session> session;
  std::vector<task_msg> waiting; // tasks that arrived before the session
  std::set<std::uint64_t> held;  // tasks received and not yet answered: listed
                                 // in the heartbeats (the server's liveness check)
  std::chrono::steady_clock::time_point model_progress; // welcome or the last chunk
  bool ticking = false;       // a tick is pending (only while something is watched)
  static inline const char* name = "client";
};

client_actor::behavior_type
client(client_actor::stateful_pointer<client_state> self, context_ptr ctx, client_config cfg);

} // namespace fedsp
