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
// Interface (`server_actor` below; each phase is a typed behaviour of it,
// and a phase that does not take a message yet leaves it in the mailbox):
//   wire_buffer   Join (answered with Welcome, then the model in chunks);
//                 Update (answered, once the clock reaches it, with the
//                 aggregator's Ack or Reject); a client's Reject of its own
//                 task (answered with Ack)
//   (aggregator)  the aggregator's handle (the fault driver crashes it)
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
  std::vector<std::string> devices; // compute.device resolved (not per worker: events
                                    // do not depend on the worker count)
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

/// The server's messages, for every phase (see above). Clients hold it as a
/// plain `caf::actor`: a link (actors/fault_layer.hpp) may stand in for it,
/// relaying the same envelopes both ways.
using server_actor = caf::typed_actor<
  caf::replies_to<wire_buffer>::with<wire_buffer>,
  caf::replies_to<aggregator_atom>::with<aggregator_actor>,
  caf::replies_to<run_atom>::with<std::string>,
  caf::replies_to<hello_atom, std::string, std::uint32_t, std::uint32_t>::with<
    std::string, std::string, std::uint64_t>,
  caf::reacts_to<tick_atom>, caf::reacts_to<retry_atom>,
  caf::reacts_to<timeout_atom, std::uint32_t>>;

//   preparing --auxiliary model built and distilled--> running (joins are
//   answered; the run starts once every client joined and (run) came):
//   version 0 is scored, then rounds (sync) or a steady stream of tasks
//   (async) until the rounds, versions or time budget are spent; the last
//   version is scored; finished.
server_actor spawn_server(caf::actor_system& sys, context_ptr ctx, server_config cfg);

} // namespace fedsp
