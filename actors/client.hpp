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
// tasks, the client sends a Heartbeat listing them. A model whose chunks
// stop coming for silence_s (a lost chunk) breaks the client: its tasks are
// refused. A job whose worker dies goes to the next worker (`spares`);
// when none is left, the task is refused.
#pragma once

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
};

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
  static inline const char* name = "client";
};

client_actor::behavior_type
client(client_actor::stateful_pointer<client_state> self, context_ptr ctx, client_config cfg);

} // namespace fedsp
