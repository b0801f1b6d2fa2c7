// The server's recovery: counters, checkpoint and restore (docs/faults.md),
// lost tasks, and the aggregator's restart from its write-ahead log.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>

#include "actors/server_state.hpp"
#include "runtime/rng.hpp"

namespace fedsp::server_room {

std::uint64_t count_of(const json& j, const char* k) {
  auto* v = j.find(k);
  return v != nullptr && v->is_number() ? static_cast<std::uint64_t>(v->as_number()) : 0;
}

/// The run's counters: summary.json reports them under these names and a
/// checkpoint keeps them (restore() adjusts the few that a crash changes).
constexpr std::pair<const char*, std::uint64_t server_state::*> counters[] = {
  {"tasks_sent", &server_state::tasks_sent},
  {"updates_accepted", &server_state::updates_accepted},
  {"updates_rejected", &server_state::updates_rejected},
  {"updates_late", &server_state::updates_late},
  {"updates_stale", &server_state::updates_stale},
  {"updates_aggregated", &server_state::updates_aggregated},
  {"updates_discarded", &server_state::updates_discarded},
  {"updates_pending", &server_state::updates_held},
  {"tasks_failed", &server_state::tasks_failed},
  {"tasks_lost", &server_state::tasks_lost},
  {"aggregator_restarts", &server_state::aggregator_restarts},
  {"dropouts", &server_state::dropouts},
  {"resumes", &server_state::resumes},
  {"tasks_interrupted", &server_state::tasks_interrupted},
};

/// The counters and the refusals by reason, set into `j`.
void set_counters(const server_state& st, json& j) {
  for (auto& [name, member] : counters)
    j.set(name, st.*member);
  json rejects = json::object{};
  for (auto& [reason, n] : st.rejects)
    rejects.set(reason, n);
  j.set("rejects", rejects);
}

/// Writes what it takes to go on from here (docs/faults.md): the version
/// and its prompts, the counters and records of the summary, and the log
/// segments consumed; then deletes those segments. `publish`: the publish
/// event this version gets (null: none), restored if a crash loses it.
/// False when it could not be written: the run is stopping (ctx->stop_on),
/// and nothing may be announced that the disk does not hold.
bool save_checkpoint(server_ptr self, const context_ptr& ctx, const json& publish) {
  auto& st = self->state;
  auto& dir = st.cfg.run_dir;
  if (dir.empty())
    return true;
  checkpoint_data ck;
  ck.state = json::object{
    {"format", 1},
    {"version", st.version},
    {"round", st.round},
    {"t", now(self)},
    {"next_task", st.next_task},
    {"in_flight", st.tasks.size()},
    {"draws", st.draws},
    {"wal_consumed", st.wal_consumed},
    {"rounds", st.rounds},
    {"initial_eval", st.initial_eval},
    {"last_eval", st.last_eval},
    {"last_eval_version",
     st.last_eval_version == ~std::uint64_t{0} ? -1.0 : static_cast<double>(st.last_eval_version)},
    {"distillation", st.distillation},
    {"publish", publish},
  };
  json counts = json::object{};
  set_counters(st, counts);
  ck.state.set("counters", counts);
  if (!st.server_step_state.empty())
    ck.blobs.emplace_back("server_step_optimizer", st.server_step_state);
  ck.prompts.emplace_back("global", st.prompts());
  for (auto& [id, ps] : st.own_prompts)
    ck.prompts.emplace_back(client_name(id), ps);
  if (ctx->events != nullptr)
    ctx->events->flush();
  if (auto err = write_file_atomic(dir + "/checkpoint.bin", encode_checkpoint(ck))) {
    ctx->event("checkpoint_failed", json::object{{"version", st.version}, {"text", err->text}});
    ctx->stop_on("checkpoint of version " + std::to_string(st.version) + " not written: "
                 + err->text + "; the run stops (free the space, then 'fedsp resume')");
    return false;
  }
  drop_log_segments(dir + "/wal", st.wal_consumed);
  return true;
}

/// What a crash changed, for a resumed run (with or without a checkpoint):
/// one more resume; every task id handed out before the crash is used (the
/// next one is above them all, so a replayed update's id is never handed
/// out again); the updates accepted after the checkpoint are those the log
/// replays (it also holds the ones pending at the checkpoint); tasks out
/// when the process died (in flight at the checkpoint or sent after it,
/// less those whose updates the log kept) are lost. `ckpt_tasks` and
/// `in_flight`: the checkpoint's, 0 without one.
void account_for_crash(server_state& st, std::uint64_t ckpt_tasks, std::uint64_t in_flight) {
  auto replayed = logged_updates(st.cfg.replay);
  ++st.resumes;
  st.next_task = std::max(ckpt_tasks, st.cfg.first_task);
  st.tasks_sent = st.next_task;
  st.updates_accepted = st.updates_accepted - st.updates_held + replayed;
  auto out = in_flight + (st.next_task - ckpt_tasks);
  st.tasks_interrupted += out > replayed ? out - replayed : 0;
  st.unaggregated = static_cast<std::uint32_t>(replayed);
  st.updates_held = replayed;
}

/// Takes the state of checkpoint `ck` (see save_checkpoint) and the log
/// records replayed after it.
void restore(server_ptr self, const checkpoint_data& ck) {
  auto& st = self->state;
  auto& s = ck.state;
  auto& c = *s.find("counters");
  st.version = count_of(s, "version");
  st.round = static_cast<std::uint32_t>(count_of(s, "round"));
  st.draws = count_of(s, "draws");
  st.wal_consumed = count_of(s, "wal_consumed");
  for (auto& [name, member] : counters)
    st.*member = count_of(c, name);
  if (auto* r = c.find("rejects"); r != nullptr && r->is_object())
    for (auto& [reason, n] : r->as_object())
      st.rejects[reason] = static_cast<std::uint64_t>(n.as_number());
  account_for_crash(st, count_of(s, "next_task"), count_of(s, "in_flight"));
  st.rounds = *s.find("rounds");
  st.initial_eval = *s.find("initial_eval");
  st.last_eval = *s.find("last_eval");
  auto lev = s.find("last_eval_version")->as_number();
  st.last_eval_version = lev < 0 ? ~std::uint64_t{0} : static_cast<std::uint64_t>(lev);
  st.distillation = *s.find("distillation");
  prompt_set global = st.prompts_ptr ? *st.prompts_ptr : prompt_set{};
  for (auto& [name, ps] : ck.prompts) {
    if (name == "global") {
      global = ps;
    } else if (name.rfind("client-", 0) == 0) {
      st.own_prompts[static_cast<std::uint32_t>(std::stoul(name.substr(7)))] = ps;
    }
  }
  for (auto& [name, bytes] : ck.blobs)
    if (name == "server_step_optimizer")
      st.server_step_state = bytes;
  global.version = st.version;
  st.set_prompts(std::move(global));
  st.wall = real_clock(1.0, number_at(s, {"t"}));
  st.resumed = true;
}


// -- failures ----------------------------------------------------------------------------

/// Task `t` will never be answered (its client died or fell silent): it
/// fails, with `why`, when the clock reaches it.
void give_up(server_ptr self, task_entry& t, const std::string& why) {
  auto& st = self->state;
  t.arrived = true;
  if (t.sent && st.in_flight > 0)
    --st.in_flight;
  t.refusal = why;
  if (is_virtual(self)) {
    if (t.entry != 0)
      st.cfg.clock->complete(t.entry);
  } else {
    t.entry = st.cfg.clock->schedule(now(self), tag(task_result, t.id));
  }
}

std::chrono::microseconds heartbeat_period(server_ptr self) {
  return std::chrono::microseconds(
    static_cast<std::int64_t>(sc_of(self).federation.silence_s / 4 * 1e6));
}

/// Tasks without word for silence_s wall seconds are lost.
void check_silence(server_ptr self, const context_ptr& ctx) {
  auto& st = self->state;
  auto silence = sc_of(self).federation.silence_s;
  auto wall = st.wall.now();
  std::vector<std::uint64_t> lost;
  for (auto& [id, t] : st.tasks)
    if (t.sent && !t.arrived && wall - t.sign > silence)
      lost.push_back(id);
  for (auto id : lost) {
    auto& t = st.tasks[id];
    ++st.tasks_lost;
    ctx->log->warn("task {} of {} lost: no word of it for {:.1f} s", id, client_name(t.client),
                   wall - t.sign);
    give_up(self, t, "lost: no word of it for " + fmt::format("{:.1f}", wall - t.sign)
                       + " s (a lost message, a partition or a silent client)");
  }
  if (!lost.empty()) {
    flush_sends(self, ctx);
    pump(self, ctx);
  }
}

aggregator_options aggregator_opts(server_ptr self) {
  auto& st = self->state;
  aggregator_options o;
  if (!st.cfg.run_dir.empty())
    o.wal_dir = st.cfg.run_dir + "/wal";
  o.sync_each = st.cfg.wal_sync_each;
  o.staleness = sc_of(self).federation.staleness;
  o.max_update_ratio = sc_of(self).federation.max_update_ratio;
  o.max_refused_in_a_row = sc_of(self).federation.max_refused_in_a_row;
  return o;
}

/// The aggregator died: a new one holds again what the log says was
/// accepted and not folded, and learns the version and the open tasks.
void restart_aggregator(server_ptr self, const context_ptr& ctx, const caf::actor_addr& dead) {
  auto& st = self->state;
  if (st.aggregator.address() != dead)
    return; // already restarted
  auto opts = aggregator_opts(self);
  std::string note;
  if (!opts.wal_dir.empty()) {
    auto log = read_log(opts.wal_dir, st.wal_consumed);
    if (log)
      opts.replay = std::move(log.value().records);
    else
      note = log.err().message();
  } else {
    note = "no write-ahead log (durability.checkpoints: false): its held updates are lost";
  }
  auto replayed = logged_updates(opts.replay);
  ++st.aggregator_restarts;
  st.aggregator = self->spawn<caf::linked>(aggregator, ctx, st.cfg.session->layout(),
                                           std::move(opts));
  ctx->event("aggregator_restarted", json::object{{"version", st.version},
                                                  {"replayed_updates", replayed},
                                                  {"note", note}});
  ctx->log->warn("aggregator died; restarted it with {} logged update(s){}", replayed,
                 note.empty() ? "" : " (" + note + ")");
  auto& f = sc_of(self).federation;
  self->send(st.aggregator, version_atom::value, st.version, f.max_staleness, f.staleness);
  bool keep = !st.cfg.plan.aggregate || strategy_named(f.aggregator).keeps_update_prompts;
  for (auto& [id, t] : st.tasks)
    self->send(st.aggregator, open_atom::value,
               task_expectation{id, t.client, t.base_version, t.round, t.base, keep});
  st.updates_held = replayed;
  if (is_async(self))
    st.unaggregated = static_cast<std::uint32_t>(replayed);
}

// -- start and end --------------------------------------------------------------------

/// summary.json as the server knows it (run_federation adds what only the
/// process knows): the run's facts, parameters, scores, traffic, per-version
/// records and counters.
json summary_of(server_ptr self, const context_ptr& ctx) {
  auto& st = self->state;
  auto& session = *st.cfg.session;
  auto& f = sc_of(self).federation;
  // One entry per client, appended (ids are unique): `set` would look each
  // name up first, quadratic in the clients (80 s at 100,000).
  json::object traffic;
  if (ctx->traffic != nullptr)
    for (auto& [id, t] : ctx->traffic->totals())
      traffic.emplace_back(client_name(id), json::object{{"bytes_received", t.to_client},
                                                          {"bytes_sent", t.from_client},
                                                          {"model_bytes_received", t.model}});
  json summary = json::object{
    {"scenario", sc_of(self).name},
    {"method", sc_of(self).method.name},
    {"seed", sc_of(self).seed},
    {"mode", f.mode},
    {"aggregator", f.aggregator},
    {"clock", f.clock},
    {"t_end", now(self)},
    {"rounds", st.round},
    {"final_version", st.version},
    {"clients", st.clients.size()},
    {"tasks_pending", st.tasks.size()},
    {"parameters", json::object{{"global", session.global_parameters()},
                                {"auxiliary", session.aux_parameters()},
                                {"client_model_bytes", session.client_model().size()}}},
    {"distillation", st.distillation},
    {"initial", st.initial_eval},
    {"final", st.last_eval},
    {"traffic", std::move(traffic)},
    {"per_round", st.rounds},
  };
  set_counters(st, summary);
  return summary;
}

} // namespace fedsp::server_room
