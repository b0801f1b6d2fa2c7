// The server's rounds: selection, tasks and their modelled timing, pacing,
// deadlines, and the pump that delivers the timeline in order.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>

#include "actors/server_state.hpp"
#include "runtime/rng.hpp"

namespace fedsp::server_room {

/// Why the run should stop now ("" if it should not): the time budget is
/// spent, or the rounds (sync) or versions (async) are done.
std::string stop_reason(server_ptr self) {
  auto& st = self->state;
  auto& f = sc_of(self).federation;
  if (f.time_budget_s > 0 && now(self) >= f.time_budget_s)
    return "time budget";
  if (is_async(self))
    return st.version >= f.max_versions() ? "versions" : "";
  return st.round >= f.rounds ? "rounds" : "";
}

bool last_step(server_ptr self) { return !stop_reason(self).empty(); }

/// Ends the run if it is time, else starts the next round (sync) or keeps
/// the tasks flowing (async).
void go_on(server_ptr self, const context_ptr& ctx) {
  self->state.busy = false;
  if (auto why = stop_reason(self); !why.empty()) {
    finish_run(self, ctx, why);
    return;
  }
  if (is_async(self))
    refill(self, ctx);
  else
    start_round(self, ctx);
  pump(self, ctx);
}

void send_task(server_ptr self, const context_ptr& ctx, task_entry& t) {
  auto& st = self->state;
  auto& sc = sc_of(self);
  auto* c = st.clients.find(t.client);
  if (c == nullptr)
    return;
  auto& tr = sc.training;
  task_msg msg{t.id,           t.client,    t.base_version, {},
               t.base,         tr.prompt_steps, static_cast<float>(tr.prompt_lr), tr.batch_size,
               mix_seed(sc.seed, 1'000'000 + t.id), t.deadline, t.round};
  t.sent = true;
  t.sign = st.wall.now();
  ++st.in_flight;
  self->send(c->handle, to_client(ctx, t.client, std::move(msg)));
}

/// Virtual clock: sends queued tasks, earliest modelled finish first, while
/// fewer than `max_in_flight` are being computed for real. The timeline
/// only ever waits for the earliest unfinished task, which is then among
/// those sent, so pacing changes memory and speed, never the events.
void flush_sends(server_ptr self, const context_ptr& ctx) {
  auto& st = self->state;
  while (st.in_flight + st.updates_waiting < server_state::max_in_flight && !st.unsent.empty()) {
    auto [finish, task_id] = st.unsent.top();
    st.unsent.pop();
    auto it = st.tasks.find(task_id);
    if (it == st.tasks.end() || it->second.sent)
      continue; // its client dropped out before it was sent
    send_task(self, ctx, it->second);
  }
}

/// A task's real answer arrived (or never will): one fewer in flight.
void answered(server_ptr self, const context_ptr& ctx) {
  auto& st = self->state;
  if (st.in_flight > 0)
    --st.in_flight;
  flush_sends(self, ctx);
}

/// The encoded size of a task on `base`, as one flat message, for modelling
/// its transfer. Every field but the prompts' values has a fixed width, so
/// the size depends on the prompts' layout (names and shapes) alone: it is
/// encoded once per layout (once per run), not once per version.
std::size_t task_bytes(server_ptr self, const prompt_set& base) {
  auto& st = self->state;
  if (st.task_bytes == 0 || check_layout(st.task_bytes_layout, base)) {
    task_msg probe{0, 0, st.version, base, nullptr, 0, 0.f, 0, 0, 0.0, 0};
    st.task_bytes = encode(envelope{self_name, probe}).size_bytes();
    st.task_bytes_layout = base;
    for (auto& t : st.task_bytes_layout.tensors)
      t.data = {}; // (names and shapes are all it compares)
  }
  return st.task_bytes;
}

/// Gives client `id` a task on the current prompts and puts its modelled
/// result on the timeline (or, if it will drop out, its dropout).
void dispatch(server_ptr self, const context_ptr& ctx, std::uint32_t id, std::uint32_t round) {
  auto& st = self->state;
  auto& sc = sc_of(self);
  auto& c = *st.clients.find(id); // (an id the registry picked)
  auto task_id = ++st.next_task;
  ++st.tasks_sent;
  auto own = st.own_prompts.find(id);
  bool use_own = !st.cfg.plan.aggregate && own != st.own_prompts.end();
  std::shared_ptr<const prompt_set> base = st.prompts_ptr; // (its version is st.version)
  if (use_own) {
    auto mine = std::make_shared<prompt_set>(own->second);
    mine->version = st.version;
    base = std::move(mine);
  }
  bool keep = !st.cfg.plan.aggregate || strategy_named(sc.federation.aggregator).keeps_update_prompts;
  self->send(st.aggregator, open_atom::value,
             task_expectation{task_id, id, st.version, round, base, keep});
  double t0 = now(self);
  task_entry t;
  t.id = task_id;
  t.client = id;
  t.base_version = st.version;
  t.round = round;
  t.base = base;
  t.deadline = round != 0 ? t0 + sc.federation.round_deadline_s : 0.0;
  json ev = json::object{{"task", task_id}, {"client", id}, {"round", round},
                         {"base_version", st.version}};
  if (is_virtual(self)) {
    // Modelled: the model must have arrived, the task comes down, the client
    // computes at its speed, the update goes up (about the task's size).
    auto bytes = task_bytes(self, *base);
    double start = std::max(t0, c.ready_at);
    double slowdown = sc.faults.slowdown(id, start, sc.seed, task_id); // straggler_burst
    double compute = c.profile.compute_seconds(st.task_flops,
                                               sc.compute.reference_gflops * 1e9)
                     * slowdown;
    if (slowdown > 1)
      ctx->event("fault", json::object{{"kind", "straggler_burst"}, {"client", id},
                                       {"task", task_id}, {"factor", slowdown}});
    double finish = start + c.profile.transfer_seconds(bytes) + compute
                    + c.profile.transfer_seconds(bytes);
    // Does the client leave before it is done? (clients.dropout, or the end
    // of its availability window)
    double leaves = sc.clients.online.offline_at(id, start);
    double away_at = sc.faults.leaves_between(id, start, finish, sc.seed, task_id); // client_dropout
    if (away_at < leaves) {
      leaves = away_at;
      ctx->event("fault", json::object{{"kind", "client_dropout"}, {"client", id},
                                       {"task", task_id}, {"leaves", away_at}});
    }
    if (sc.clients.dropout > 0) {
      rng r(mix_seed(sc.seed, 9'000'000 + task_id));
      double u = uniform01(r), v = uniform01(r);
      if (u < sc.clients.dropout)
        leaves = std::min(leaves, start + v * (finish - start));
    }
    t.finish = finish;
    ev.set("start", start);
    ev.set("finish", finish);
    if (leaves < finish) {
      ev.set("leaves", leaves);
      t.entry = 0; // its result, whenever it comes, is never delivered
      st.cfg.clock->schedule(leaves, tag(dropout, task_id));
    } else {
      t.entry = st.cfg.clock->expect(finish, tag(task_result, task_id));
    }
  }
  st.clients.set_busy(id, true);
  ctx->event("task", ev);
  auto& entry = st.tasks.emplace(task_id, std::move(t)).first->second;
  if (round != 0)
    st.round_tasks.insert(task_id);
  else
    ++st.active;
  if (is_virtual(self)) {
    st.unsent.push({entry.finish, task_id});
    flush_sends(self, ctx);
  } else {
    send_task(self, ctx, entry);
  }
}

/// Sync: the round is over (enough updates, none left, or the deadline).
void close_round(server_ptr self, const context_ptr& ctx, const char* why) {
  auto& st = self->state;
  auto& f = sc_of(self).federation;
  st.round_open = false;
  for (auto task : st.round_tasks) {
    auto it = st.tasks.find(task);
    if (it == st.tasks.end())
      continue;
    it->second.late = true;
    ctx->event("task_late", json::object{{"task", task},
                                         {"client", it->second.client},
                                         {"round", st.round},
                                         {"policy", f.late_updates}});
  }
  st.round_tasks.clear();
  auto quorum = f.quorum ? std::min(f.quorum, st.round_target) : st.round_target;
  json rec = json::object{{"round", st.round},
                          {"selected", st.round_target},
                          {"accepted", st.round_accepted},
                          {"failed", st.round_failed},
                          {"closed_by", why}};
  aggregate(self, ctx, st.round, std::max<std::uint32_t>(quorum, 1), std::move(rec));
}

/// Sync: selects the round's clients among those idle and online.
void start_round(server_ptr self, const context_ptr& ctx) {
  auto& st = self->state;
  auto& sc = sc_of(self);
  auto& f = sc.federation;
  if (st.clients.empty()) {
    // Every client is gone (fedsp serve: their nodes went down): no round
    // until one joins again.
    if (!st.retry_scheduled) {
      st.retry_scheduled = true;
      ctx->log->warn("no client is joined; round {} waits for one", st.round + 1);
      if (is_virtual(self))
        st.cfg.clock->schedule(now(self) + 1.0, tag(retry, 0));
      else
        self->delayed_send(self, std::chrono::milliseconds(250), retry_atom::value);
    }
    return;
  }
  ++st.round;
  st.round_accepted = 0;
  st.round_failed = 0;
  auto per_round = f.clients_per_round ? f.clients_per_round
                                       : static_cast<std::uint32_t>(st.clients.size());
  auto want = static_cast<std::size_t>(std::ceil(per_round * f.over_selection - 1e-9));
  auto [ids, offline, busy] = st.clients.pick_round(sc, now(self), st.round, want);
  st.round_target = std::min<std::uint32_t>(per_round, static_cast<std::uint32_t>(ids.size()));
  st.round_open = true;
  ctx->event("round", json::object{{"round", st.round},
                                   {"selected", ids.size()},
                                   {"target", st.round_target},
                                   {"offline", offline},
                                   {"busy", busy}});
  for (auto id : ids)
    dispatch(self, ctx, id, st.round);
  if (is_virtual(self))
    st.cfg.clock->schedule(now(self) + f.round_deadline_s, tag(deadline, st.round));
  else
    self->delayed_send(self,
                       std::chrono::microseconds(static_cast<std::int64_t>(f.round_deadline_s * 1e6)),
                       timeout_atom::value, st.round);
}

/// Async: keeps `concurrency` tasks in flight on idle, online clients.
void refill(server_ptr self, const context_ptr& ctx) {
  auto& st = self->state;
  auto& sc = sc_of(self);
  auto& f = sc.federation;
  auto n = static_cast<std::uint32_t>(st.clients.size());
  auto slots = f.concurrency ? f.concurrency : (f.clients_per_round ? f.clients_per_round : n);
  if (st.stopping)
    return;
  while (st.active < slots) {
    auto pick = st.clients.pick_one(sc, now(self), ++st.draws);
    if (!pick) {
      // Nobody to give work to now: look again a little later.
      if (!st.retry_scheduled) {
        st.retry_scheduled = true;
        if (is_virtual(self))
          st.cfg.clock->schedule(now(self) + 1.0, tag(retry, 0));
        else
          self->delayed_send(self, std::chrono::milliseconds(250), retry_atom::value);
      }
      return;
    }
    dispatch(self, ctx, *pick, 0);
  }
}

/// A task's result is due: hand it to the aggregator (or record why not).
void deliver(server_ptr self, const context_ptr& ctx, std::uint64_t task_id) {
  auto& st = self->state;
  auto it = st.tasks.find(task_id);
  if (it == st.tasks.end())
    return;
  auto entry = std::move(it->second);
  st.tasks.erase(it);
  st.clients.set_busy(entry.client, false);
  // The continuations capture these facts, not the entry (whose update
  // buffer would be copied with it).
  struct facts {
    std::uint64_t id;
    std::uint32_t round;
    std::uint64_t base_version;
  } t{entry.id, entry.round, entry.base_version};
  auto settle = [=](bool accepted) {
    auto& st = self->state;
    auto& f = sc_of(self).federation;
    st.busy = false;
    if (t.round == 0) { // async
      --st.active;
      if (accepted)
        ++st.unaggregated;
      bool fold = accepted && (strategy_named(f.aggregator).folds_each_update
                                   || st.unaggregated >= f.buffer_size);
      if (fold && !st.stopping) {
        aggregate(self, ctx, 0, 1, json::object{{"round", 0}});
        return;
      }
      if (f.broadcast == "after_receiving" || st.active == 0)
        refill(self, ctx);
    } else if (t.round == st.round && st.round_open) {
      st.round_tasks.erase(t.id);
      if (accepted)
        ++st.round_accepted;
      else
        ++st.round_failed;
      if (st.round_accepted >= st.round_target)
        close_round(self, ctx, "target");
      else if (st.round_tasks.empty())
        close_round(self, ctx, "all answered");
      if (st.busy)
        return;
    } else if (accepted) {
      ++st.unaggregated; // a late update kept for the next round (stale)
    }
    pump(self, ctx);
  };
  if (!entry.update) {
    ++st.tasks_failed;
    ctx->event("task_failed", json::object{{"task", entry.id}, {"client", entry.client},
                                           {"reason", entry.refusal}});
    settle(false);
    return;
  }
  if (entry.late)
    ++st.updates_late;
  st.busy = true;
  auto answer = entry.reply;
  auto agg = st.aggregator;
  auto update = std::move(*entry.update);
  entry.held.release(); // handed on: its slot takes the next task
  if (is_virtual(self))
    flush_sends(self, ctx);
  self->request(agg, caf::infinite, std::move(update))
    .then(
      [=](const wire_buffer& reply) mutable {
        auto& st = self->state;
        answer.deliver(reply);
        auto env = decode(reply);
        bool ok = env && std::holds_alternative<ack_msg>(env.value().body);
        count_reject(self, reply);
        if (ok) {
          ++st.updates_accepted;
          if (t.base_version < st.version)
            ++st.updates_stale;
        } else {
          ++st.updates_rejected;
        }
        settle(ok);
      },
      [=](caf::error&) mutable { // the aggregator died with it: if the log has
                                 // it, the new aggregator holds it again
        restart_aggregator(self, ctx, agg.address());
        auto& st = self->state;
        ++st.updates_rejected;
        ++st.rejects["aggregator_restarted"];
        answer.deliver(ctx->seal(envelope{
          self_name, reject_msg{errc::unknown, "the aggregator restarted while checking it", t.id}}));
        settle(false);
      });
}

/// Delivers timeline entries in order until one needs to wait.
void pump(server_ptr self, const context_ptr& ctx) {
  auto& st = self->state;
  auto& f = sc_of(self).federation;
  while (st.running && !st.busy && !st.stopping) {
    if (f.time_budget_s > 0) {
      auto next_at = st.cfg.clock->earliest();
      if (next_at && *next_at > f.time_budget_s && is_virtual(self)) {
        finish_run(self, ctx, "time budget");
        return;
      }
    }
    auto e = st.cfg.clock->next();
    if (!e)
      return;
    auto id = id_of(e->tag);
    switch (kind_of(e->tag)) {
      case task_result:
        deliver(self, ctx, id);
        break;
      case deadline:
        if (id == st.round && st.round_open) {
          ctx->event("deadline", json::object{{"round", id}, {"open_tasks", st.round_tasks.size()}});
          ctx->log->info("round {} deadline: {} task(s) still open", id, st.round_tasks.size());
          close_round(self, ctx, "deadline");
        }
        break;
      case dropout: {
        auto it = st.tasks.find(id);
        if (it == st.tasks.end())
          break;
        auto t = std::move(it->second);
        st.tasks.erase(it);
        st.gone.insert(id);
        ++st.dropouts;
        st.clients.set_busy(t.client, false);
        ctx->event("dropout", json::object{{"task", id}, {"client", t.client}, {"round", t.round}});
        if (t.arrived && t.reply.pending())
          t.reply.deliver(ctx->seal(envelope{
            self_name, reject_msg{errc::task_closed, "the client dropped out mid-task", id}}));
        if (t.round == 0) {
          --st.active;
          refill(self, ctx);
        } else if (t.round == st.round && st.round_open) {
          st.round_tasks.erase(id);
          ++st.round_failed;
          if (st.round_tasks.empty())
            close_round(self, ctx, "all answered");
        }
        break;
      }
      case retry:
        st.retry_scheduled = false;
        if (is_async(self))
          refill(self, ctx);
        else if (!st.round_open && !st.busy)
          start_round(self, ctx);
        break;
    }
  }
}


/// Starts once prepared, every expected client joined and main asked to run.
void maybe_start(server_ptr self, const context_ptr& ctx) {
  auto& st = self->state;
  if (!st.prepared || !st.run_requested || st.running
      || st.clients.size() + st.cfg.absent < st.cfg.expected_clients)
    return;
  st.running = true;
  self->delayed_send(self, heartbeat_period(self), tick_atom::value);
  ctx->log->info("{} clients joined; scoring version 0", st.clients.size());
  if (is_virtual(self)) {
    std::size_t model_bytes = 0;
    for (auto& ch : st.model_chunks)
      model_bytes += ch.data.size();
    for (auto& [id, c] : st.clients) {
      ctx->event("join", json::object{{"client", id},
                                      {"num_samples", c.num_samples},
                                      {"speed", c.profile.speed},
                                      {"latency_s", c.profile.latency_s},
                                      {"bandwidth_mbps", c.profile.bandwidth_Bps * 8 / 1e6}});
      if (!st.model_chunks.empty())
        ctx->event("model_sent", json::object{{"client", id},
                                              {"model", st.model_chunks.front().model_id},
                                              {"bytes", model_bytes},
                                              {"chunks", st.model_chunks.size()},
                                              {"arrives_at", c.ready_at}});
    }
  }
  self->send(st.aggregator, version_atom::value, st.version,
             sc_of(self).federation.max_staleness, sc_of(self).federation.staleness);
  if (st.resumed) { // the checkpoint's version is scored if that was lost
    bool due = st.last_eval_version != st.version && eval_due(self, last_step(self));
    evaluate(self, ctx, due, [=] { go_on(self, ctx); });
    return;
  }
  evaluate(self, ctx, true, [=] { go_on(self, ctx); }); // (zero-shot ends here)
}

} // namespace fedsp::server_room
