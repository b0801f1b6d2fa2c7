// client: one federation participant with private data.
//
//   joining --Welcome--> ready --Task--> training --worker done--> submitting
//      ^                   ^                                         |
//      |                   +------------- Ack / Reject --------------+
//   (Join sent at spawn)        Shutdown in any phase: quit
//
// The client joins the server, then answers each Task: it checks the task is
// its own and the prompts fit the announced layout, trains them on a worker,
// and sends the Update to the aggregator. Only prompts (plus counts and
// metrics) leave the client; its data never does.
#pragma once

#include "actors/aggregator.hpp"
#include "actors/worker.hpp"

namespace fedsp {

using client_actor = caf::typed_actor<caf::reacts_to<wire_buffer>>;

struct client_config {
  std::uint32_t id = 0;
  example_list data;          // this client's private training split
  caf::actor server;          // receives Join
  aggregator_actor aggregator; // receives Update
  worker_actor worker;        // runs the training
};

struct client_state {
  prompt_set layout;          // from Welcome
  bool welcomed = false;
  std::uint64_t tasks_done = 0;
  static inline const char* name = "client";
};

client_actor::behavior_type
client(client_actor::stateful_pointer<client_state> self, context_ptr ctx,
       client_config cfg);

} // namespace fedsp
