// server: owns the global model and prompts, and drives the federation on
// its clock: synchronous rounds or asynchronous aggregation.
//
// It spawns its aggregator and evaluator (they live and die with it) and
// talks to clients only through federation envelopes. Its model work (the
// auxiliary model's distillation, the server step) runs on a worker.
//
// Time (docs/architecture.md "The clock"): every task's modelled finish time is known when
// it is dispatched (transfer + compute from the client's profile), and the
// server's timeline delivers task results, deadlines and dropouts strictly in
// (virtual time, sequence) order, waiting for a task's real computation when
// it is the earliest entry. While the server waits for its aggregator, a
// worker or the evaluator it delivers nothing else, so the same seed gives
// the same events whatever the machine or the number of workers. On the
// real clock (federation.clock: real) results are delivered as they arrive.
//
// Contract (dynamically typed, so that the set-up phases can be behaviours):
//   wire_buffer   Join (answered with Welcome, then the model in chunks);
//                 Update (answered, once the clock reaches it, with the
//                 aggregator's Ack or Reject); a client's Reject of its own
//                 task (answered with Ack)
//   (aggregator)  from main: the aggregator's handle
//   (run)         from main: start once prepared and every client joined;
//                 the response is summary JSON at the end
//   (timeout, r)  real clock: round r's deadline (sent to itself)
//   (retry)       real clock, async: look for an online client again
//   (hello, token, first, last)  fedsp serve: a join node asks to host
//                 clients first..last; answered with the scenario's text, path
//                 and seed, and binds those ids to its node; a wrong token or
//                 ids held by a node whose clients are still joined: an error
//   (tick)        every silence_s / 4 wall seconds: tasks without word for
//                 federation.silence_s are lost (their client fell silent,
//                 or the Task or its Update was lost on the way)
//   wire_buffer   Heartbeat: the tasks a client holds (refreshes them)
//
// The aggregator is spawned linked, and the server traps its exit: when it
// dies the server starts a new one, which holds again what the write-ahead log says was accepted and
// not yet folded, and is told the open tasks again.
#pragma once

#include <queue>
#include <set>

#include "actors/aggregator.hpp"
#include "actors/client.hpp"
#include "actors/evaluator.hpp"
#include "runtime/durable.hpp"
#include "runtime/profile.hpp"
#include "runtime/timeline.hpp"

namespace fedsp {

struct server_config {
  std::shared_ptr<const scenario> sc;
  method_plan plan;
  std::shared_ptr<server_session> session;
  worker_actor worker;
  std::uint32_t expected_clients = 0;
  timeline* clock = nullptr; // the run's timeline (its time is the events' t
                             // on the virtual clock)
  // Durability (docs/faults.md): where checkpoints and the aggregator's log
  // go, and what an interrupted run left there.
  std::string run_dir;                   // "": neither
  bool wal_sync_each = false;            // fdatasync each log record
  bool resuming = false;                 // fedsp resume (with or without a checkpoint)
  std::optional<checkpoint_data> resume; // the last checkpoint: go on from it
  std::vector<std::string> replay;       // log records written after it
  std::uint64_t first_task = 0;          // task ids already handed out
  std::uint32_t absent = 0;              // of expected_clients, crashed before a
                                         // resume: they will not join
  std::string join_token;                // fedsp serve: clients come from join
                                         // nodes that present this token first
};

//   preparing --auxiliary model built and distilled--> awaiting_joins
//   awaiting_joins --all joined and (run)--> running: version 0 is scored,
//   then rounds (sync) or a steady stream of tasks (async) until the rounds,
//   versions or time budget are spent; the last version is scored; finished.
struct server_state {
  struct client_entry {
    client_actor handle;
    std::uint64_t num_samples = 0;
    client_profile profile;
    double ready_at = 0;  // when the model it received has arrived
    bool busy = false;    // it has a task (in virtual time)
  };
  struct task_entry {
    std::uint64_t id = 0;
    std::uint32_t client = 0;
    std::uint64_t base_version = 0;
    std::uint32_t round = 0;           // sync; 0 in async mode
    timeline::entry_id entry = 0;      // its result's delivery (0: none yet)
    double finish = 0;                 // modelled finish (virtual clock)
    bool arrived = false;              // the client's answer is here
    std::optional<wire_buffer> update; // ... an Update (none: it refused)
    std::string refusal;
    caf::response_promise reply;       // the client's request, answered on delivery
    bool late = false;                 // its round closed before it arrived
    bool sent = false;                 // the Task went out (virtual clock: paced)
    double deadline = 0;
    std::shared_ptr<const prompt_set> base; // the prompts it carries
    double sign = 0;                   // wall time of the last word of it (sent,
                                       // or a heartbeat listing it)
  };

  server_config cfg;
  aggregator_actor aggregator;
  evaluator_actor evaluator;
  std::map<std::uint32_t, client_entry> clients;
  std::vector<client_profile> profiles; // by client id, drawn from the scenario
  double task_flops = 0;                // modelled work of one client task
  std::vector<model_chunk_msg> model_chunks; // what every client receives
  real_clock wall;

  prompt_set prompts;             // the current global prompts
  std::shared_ptr<const prompt_set> prompts_ptr; // ... shared with open tasks
  std::uint64_t version = 0;      // their version
  std::map<std::uint32_t, prompt_set> own_prompts; // local-only: per client
  std::uint32_t round = 0;        // sync: the current (or last) round
  std::uint64_t next_task = 0;
  std::map<std::uint64_t, task_entry> tasks; // dispatched, not yet delivered
  std::set<std::uint64_t> gone;   // tasks whose client dropped out mid-task
  // Virtual clock: tasks waiting to be sent, earliest modelled finish first,
  // and how many sent ones are still being computed.
  static constexpr std::uint32_t max_in_flight = 256;
  std::priority_queue<std::pair<double, std::uint64_t>,
                      std::vector<std::pair<double, std::uint64_t>>, std::greater<>>
    unsent;
  std::uint32_t in_flight = 0;
  std::uint64_t task_bytes_version = ~std::uint64_t{0};
  std::size_t task_bytes = 0;

  // sync round
  bool round_open = false;
  std::set<std::uint64_t> round_tasks; // this round's tasks not yet resolved
  std::uint32_t round_target = 0, round_accepted = 0, round_failed = 0;
  // async
  std::uint32_t active = 0;        // tasks in flight
  std::uint32_t unaggregated = 0;  // accepted, not yet folded
  std::uint64_t draws = 0;         // dispatch attempts (availability draws)
  bool retry_scheduled = false;

  bool prepared = false;
  bool run_requested = false;
  bool running = false;
  bool busy = false;              // waiting for the aggregator, a worker or the evaluator
  bool stopping = false;
  caf::response_promise done;
  json rounds = json::array{};    // per-version records for summary.json / metrics.csv
  json initial_eval;
  json last_eval;
  std::uint64_t last_eval_version = ~std::uint64_t{0};
  json distillation;
  std::uint64_t tasks_sent = 0;
  std::uint64_t updates_accepted = 0;
  std::uint64_t updates_rejected = 0;
  std::uint64_t updates_late = 0;     // arrived after their round closed
  std::uint64_t updates_stale = 0;    // accepted with staleness > 0
  std::uint64_t dropouts = 0;         // clients that left mid-task
  std::uint64_t tasks_failed = 0;     // clients that could not train
  std::uint64_t tasks_lost = 0;       // ... or fell silent about them (docs/faults.md)
  std::uint64_t aggregator_restarts = 0;
  std::uint64_t updates_aggregated = 0;
  std::uint64_t updates_discarded = 0; // accepted, lost with a failed round
  std::uint64_t updates_held = 0;      // accepted, not folded by the end
  std::map<std::string, std::uint64_t> rejects; // refused messages by reason
  // durability
  json last_folded = json::array{};    // task ids of the last aggregate
  std::uint64_t wal_consumed = 0;      // log segments folded or discarded
  std::uint64_t resumes = 0;           // times this run was resumed
  std::uint64_t tasks_interrupted = 0; // tasks lost with a crashed process
  bool resumed = false;                // this process goes on from a checkpoint
  std::string server_step_state;       // the server step's optimizer, after the last step
  // fedsp serve: which node each client id is bound to (its hello)
  std::map<std::uint32_t, caf::node_id> owner;

  static inline const char* name = "server";
};

caf::behavior server(caf::stateful_actor<server_state>* self, context_ptr ctx, server_config cfg);

} // namespace fedsp
