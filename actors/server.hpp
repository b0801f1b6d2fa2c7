// server: owns the global prompts and drives synchronous rounds.
//
// It spawns its aggregator and evaluator (they live and die with it) and
// talks to clients only through federation envelopes.
//
// Contract (dynamically typed, so that phases can be named behaviours):
//   wire_buffer            Join (answered with Welcome) or a client's Reject
//   (aggregator)           from main, before run: the aggregator's handle
//   (run)                  from main: start once every client joined; the
//                          response is summary JSON when the run is over
//   (accepted, task)       from the aggregator
//   (rejected, task)       from the aggregator
//   (timeout, round)       the round deadline (sent to itself)
#pragma once

#include "actors/aggregator.hpp"
#include "actors/client.hpp"
#include "actors/evaluator.hpp"

namespace fedsp {

struct server_config {
  std::string scenario_name;
  std::uint64_t seed = 1;
  std::uint32_t expected_clients = 0;
  federation_params federation;
  training_params training;
  prompt_set initial;      // version 0
  prompt_set layout;       // announced in Welcome, enforced by the aggregator
  worker_actor eval_worker;
  example_list test_data;
};

//   awaiting_joins --all joined and (run)--> evaluating (version 0)
//   evaluating --report--> collecting (round r+1) | finished (r == rounds)
//   collecting --all answered | deadline--> aggregating
//   aggregating --outcome--> evaluating
//   A Join in any live phase is welcomed; a client that joins late is
//   selected from the next round on.
struct server_state {
  struct client_entry {
    client_actor handle;
    std::uint64_t num_samples = 0;
  };

  server_config cfg;
  aggregator_actor aggregator;
  evaluator_actor evaluator;
  std::map<std::uint32_t, client_entry> clients;

  prompt_set prompts;             // the current global prompts
  std::uint64_t version = 0;      // their version
  std::uint32_t round = 0;        // the current (or last) round
  std::uint64_t next_task = 0;
  std::map<std::uint64_t, std::uint32_t> pending; // open task -> client
  std::uint32_t round_accepted = 0;
  std::uint32_t round_failed = 0;

  bool run_requested = false;
  caf::response_promise done;
  json rounds = json::array{};    // per-round records for summary.json
  json initial_eval;
  json last_eval;
  std::uint64_t tasks_sent = 0;
  std::uint64_t updates_accepted = 0;
  std::uint64_t updates_rejected = 0;

  static inline const char* name = "server";
};

caf::behavior server(caf::stateful_actor<server_state>* self, context_ptr ctx,
                     server_config cfg);

} // namespace fedsp
