// The server's rooms (docs/architecture.md, "The server's rooms"): its
// state, and the functions of its one actor split by concern. Only the
// server's own files include this header.
//
//   server_phases.cpp      intake (Join, Update, Reject, Heartbeat, hello)
//                          and the phases: preparing, running, finished
//   client_registry.cpp    who joined, join nodes, sampling (an object)
//   server_rounds.cpp      the start, rounds, asynchronous slots, tasks, the
//                          clock's pump
//   server_versions.cpp    aggregate, server step, publish, score
//   server_recovery.cpp    counters and the summary, checkpoint and restore,
//                          lost tasks, the aggregator's restart
#pragma once

#include <queue>
#include <utility>
#include <set>

#include "actors/client_registry.hpp"
#include "actors/server.hpp"

namespace fedsp {

//   preparing --auxiliary model built and distilled--> awaiting_joins
//   awaiting_joins --all joined and (run)--> running: version 0 is scored,
//   then rounds (sync) or a steady stream of tasks (async) until the rounds,
//   versions or time budget are spent; the last version is scored; finished.
/// While it lives, one more update is counted as held by the server (it
/// arrived and is not yet handed to the aggregator). Move-only; it counts
/// down however the task entry holding it goes (delivered, dropped, lost).
class held_update_token {
public:
  held_update_token() = default;
  explicit held_update_token(std::size_t* n) : n_(n) { ++*n_; }
  held_update_token(held_update_token&& o) noexcept : n_(std::exchange(o.n_, nullptr)) {}
  held_update_token& operator=(held_update_token&& o) noexcept {
    release();
    n_ = std::exchange(o.n_, nullptr);
    return *this;
  }
  held_update_token(const held_update_token&) = delete;
  held_update_token& operator=(const held_update_token&) = delete;
  ~held_update_token() { release(); }
  void release() {
    if (n_ != nullptr)
      --*n_;
    n_ = nullptr;
  }

private:
  std::size_t* n_ = nullptr;
};

struct server_state {
  struct task_entry {
    std::uint64_t id = 0;
    std::uint32_t client = 0;
    std::uint64_t base_version = 0;
    std::uint32_t round = 0;           // sync; 0 in async mode
    timeline::entry_id entry = 0;      // its result's delivery (0: none yet)
    double finish = 0;                 // modelled finish (virtual clock)
    bool arrived = false;              // the client's answer is here
    std::optional<wire_buffer> update; // ... an Update (none: it refused)
    held_update_token held;            // counts `update` in updates_waiting
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
  client_registry clients;              // who joined, their profiles, join nodes
  double task_flops = 0;                // modelled work of one client task
  std::vector<model_chunk_msg> model_chunks; // what every client receives
  real_clock wall;

  // The current global prompts, one copy shared with every open task (and
  // the aggregator, and the messages that carry them): set_prompts() moves
  // a new version in; nothing copies it per task or per request.
  std::shared_ptr<const prompt_set> prompts_ptr;
  const prompt_set& prompts() const { return *prompts_ptr; }
  void set_prompts(prompt_set ps) { prompts_ptr = std::make_shared<const prompt_set>(std::move(ps)); }
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
  // Updates that arrived before the clock reached them: they take a slot of
  // max_in_flight too, or fast clients would have every update of a round
  // held here at once (100,000 x the update size: bench/README.md).
  std::size_t updates_waiting = 0;
  prompt_set task_bytes_layout; // the layout task_bytes was measured on
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

  static inline const char* name = "server";
};

namespace server_room {

using server_ptr = server_actor::stateful_pointer<server_state>;
using task_entry = server_state::task_entry;

/// The sender name on every envelope the server seals.
inline const std::string self_name = "server";

// Timeline tags: what an entry means, in the top byte; an id below.
enum tag_kind : std::uint64_t { task_result = 1, deadline = 2, dropout = 3, retry = 4 };
inline std::uint64_t tag(tag_kind k, std::uint64_t id) { return (std::uint64_t{k} << 56) | id; }
inline tag_kind kind_of(std::uint64_t t) { return static_cast<tag_kind>(t >> 56); }
inline std::uint64_t id_of(std::uint64_t t) { return t & ((std::uint64_t{1} << 56) - 1); }

inline const scenario& sc_of(server_ptr self) { return *self->state.cfg.sc; }
inline bool is_async(server_ptr self) { return sc_of(self).federation.mode == "async"; }
inline bool is_virtual(server_ptr self) { return sc_of(self).federation.clock == "virtual"; }

/// The time of the run: the timeline's on the virtual clock, else the wall's.
inline double now(server_ptr self) {
  return is_virtual(self) ? self->state.cfg.clock->now() : self->state.wall.now();
}

// -- server_phases.cpp ----------------------------------------------------------------

/// Seals a message for client `id`, counting its bytes.
wire_buffer to_client(const context_ptr& ctx, std::uint32_t id, message_body body);
/// Stops the actor after an internal failure (a crashed worker or helper).
void fail(server_ptr self, const context_ptr& ctx, const caf::error& err, const char* what);
/// Counts a Reject (by its reason) the aggregator answered with.
void count_reject(server_ptr self, const wire_buffer& reply);
/// Scores the last version if it was not, then stops: `finished`.
void finish_run(server_ptr self, const context_ptr& ctx, const std::string& why);

// -- server_rounds.cpp ----------------------------------------------------------------

/// Why the run should stop now ("" if it should not).
std::string stop_reason(server_ptr self);
bool last_step(server_ptr self);
/// Ends the run if it is time, else the next round (sync) or more tasks (async).
void go_on(server_ptr self, const context_ptr& ctx);
/// Sync: selects the round's clients and dispatches their tasks.
void start_round(server_ptr self, const context_ptr& ctx);
/// Async: keeps `concurrency` tasks in flight.
void refill(server_ptr self, const context_ptr& ctx);
/// Virtual clock: sends queued tasks while fewer than max_in_flight compute
/// or wait here to be delivered.
void flush_sends(server_ptr self, const context_ptr& ctx);
/// A task's real answer arrived (or never will): one fewer in flight.
void answered(server_ptr self, const context_ptr& ctx);
/// Delivers timeline entries in order until one needs to wait.
void pump(server_ptr self, const context_ptr& ctx);
/// Starts once prepared, every expected client joined and main asked to run.
void maybe_start(server_ptr self, const context_ptr& ctx);

// -- server_versions.cpp --------------------------------------------------------------

/// Scores the current version (if `due`) and records it; then `next`.
void evaluate(server_ptr self, const context_ptr& ctx, bool due, std::function<void()> next);
/// Is the current round's (sync) or version's (async) score due (or the last)?
bool eval_due(server_ptr self, bool last);
/// Asks the aggregator for an aggregate and publishes it (FedSP: after the
/// server step). `round` 0 in async mode.
void aggregate(server_ptr self, const context_ptr& ctx, std::uint32_t round,
               std::uint32_t min_updates, json rec);

// -- server_recovery.cpp --------------------------------------------------------------

/// The counters and the refusals by reason, set into `j`.
void set_counters(const server_state& st, json& j);
/// summary.json as the server knows it.
json summary_of(server_ptr self, const context_ptr& ctx);
/// Writes the checkpoint of the current version (docs/faults.md); false
/// when it could not be written and the run is stopping.
bool save_checkpoint(server_ptr self, const context_ptr& ctx, const json& publish);
/// What a crash changed, for a resumed run.
void account_for_crash(server_state& st, std::uint64_t ckpt_tasks, std::uint64_t in_flight);
/// Takes the state of checkpoint `ck`.
void restore(server_ptr self, const checkpoint_data& ck);
/// Task `t` will never be answered: it fails, with `why`, when the clock reaches it.
void give_up(server_ptr self, task_entry& t, const std::string& why);
std::chrono::microseconds heartbeat_period(server_ptr self);
/// Tasks without word for silence_s wall seconds are lost.
void check_silence(server_ptr self, const context_ptr& ctx);
aggregator_options aggregator_opts(server_ptr self);
/// The aggregator died: a new one replays the log and learns the open tasks.
void restart_aggregator(server_ptr self, const context_ptr& ctx, const caf::actor_addr& dead);

} // namespace server_room
} // namespace fedsp
