// server: owns the global model and prompts, and drives synchronous rounds.
//
// It spawns its aggregator and evaluator (they live and die with it) and
// talks to clients only through federation envelopes. Its model work (the
// auxiliary model's distillation, the server step) runs on a worker.
//
// Contract (dynamically typed, so that phases can be named behaviours):
//   wire_buffer            Join (answered with Welcome, then the model in
//                          chunks) or a client's Reject of its own task
//   (aggregator)           from main: the aggregator's handle
//   (run)                  from main: start once prepared and every client
//                          joined; the response is summary JSON at the end
//   (accepted, task)       from the aggregator
//   (rejected, task)       from the aggregator
//   (timeout, round)       the round deadline (sent to itself)
#pragma once

#include "actors/aggregator.hpp"
#include "actors/client.hpp"
#include "actors/evaluator.hpp"

namespace fedsp {

struct server_config {
  std::shared_ptr<const scenario> sc;
  method_plan plan;
  std::shared_ptr<server_session> session;
  worker_actor worker;
  std::uint32_t expected_clients = 0;
};

//   preparing --auxiliary model built and distilled--> awaiting_joins
//   awaiting_joins --all joined and (run)--> evaluating (version 0)
//   evaluating --report--> collecting (round r+1) | finished (r == rounds)
//   collecting --all answered | deadline--> aggregating
//   aggregating --FedAvg (+ server step)--> evaluating
//   A Join in any live phase after preparing is welcomed; a client that joins
//   late is selected from the next round on.
struct server_state {
  struct client_entry {
    client_actor handle;
    std::uint64_t num_samples = 0;
  };

  server_config cfg;
  aggregator_actor aggregator;
  evaluator_actor evaluator;
  std::map<std::uint32_t, client_entry> clients;
  std::vector<model_chunk_msg> model_chunks; // what every client receives

  prompt_set prompts;             // the current global prompts
  std::uint64_t version = 0;      // their version
  std::map<std::uint32_t, prompt_set> own_prompts; // local-only: per client
  std::uint32_t round = 0;        // the current (or last) round
  std::uint64_t next_task = 0;
  std::map<std::uint64_t, std::uint32_t> pending; // open task -> client
  std::uint32_t round_failed = 0;

  bool prepared = false;
  bool run_requested = false;
  caf::response_promise done;
  json rounds = json::array{};    // per-round records for summary.json
  json initial_eval;
  json last_eval;
  json distillation;
  std::uint64_t tasks_sent = 0;
  std::uint64_t updates_accepted = 0;
  std::uint64_t updates_rejected = 0;

  static inline const char* name = "server";
};

caf::behavior server(caf::stateful_actor<server_state>* self, context_ptr ctx, server_config cfg);

} // namespace fedsp
