#include "actors/server.hpp"

#include <algorithm>
#include <chrono>

#include "runtime/rng.hpp"

namespace fedsp {

namespace {

const std::string self_name = "server";

using server_ptr = caf::stateful_actor<server_state>*;

caf::behavior awaiting_joins(server_ptr self, context_ptr ctx);
caf::behavior collecting(server_ptr self, const context_ptr& ctx);
void evaluate(server_ptr self, context_ptr ctx);

// -- shared handlers -----------------------------------------------------------------

/// Every envelope sent to the server is answered with one: Join with Welcome,
/// a client's Reject of its own task (it could not train it) with Ack, and
/// anything else with a Reject saying why.
wire_buffer on_wire(server_ptr self, const context_ptr& ctx, const wire_buffer& buf) {
  auto& st = self->state;
  auto refuse = [&](const error& err, const std::string& from) {
    ctx->event("reject", json::object{{"by", self_name},
                                      {"from", from},
                                      {"reason", to_string(err.code)},
                                      {"text", err.text}});
    ctx->log->warn("server rejected a message from '{}': {}", from, err.message());
    return ctx->seal(envelope{self_name, reject_msg{err.code, err.text, 0}});
  };
  auto env = decode(buf);
  if (!env)
    return refuse(env.err(), "?");
  auto& e = env.value();
  if (auto* join = std::get_if<join_msg>(&e.body)) {
    if (e.sender != client_name(join->client_id))
      return refuse(error{errc::wrong_client, "join for " + client_name(join->client_id)
                                                + " sent as '" + e.sender + "'"},
                    e.sender);
    auto handle = caf::actor_cast<client_actor>(self->current_sender());
    if (!handle)
      return refuse(error{errc::unknown_sender, "join without a reply address"},
                    e.sender);
    st.clients[join->client_id] = {handle, join->num_samples};
    self->monitor(handle);
    ctx->event("join", json::object{{"client", join->client_id},
                                    {"num_samples", join->num_samples}});
    return ctx->seal(envelope{self_name, welcome_msg{join->client_id, st.version,
                                                     st.cfg.layout}});
  }
  if (auto* rej = std::get_if<reject_msg>(&e.body)) {
    auto it = st.pending.find(rej->task_id);
    if (it == st.pending.end() || e.sender != client_name(it->second))
      return refuse(error{errc::unknown_task, "no open task "
                                                + std::to_string(rej->task_id)
                                                + " of '" + e.sender + "'"},
                    e.sender);
    ctx->log->warn("{} could not train task {}: {}", e.sender, rej->task_id,
                   rej->text);
    st.pending.erase(it);
    ++st.round_failed;
    return ctx->seal(envelope{self_name, ack_msg{rej->task_id}});
  }
  return refuse(error{errc::unsupported,
                      std::string("server takes join or reject, got ")
                        + kind_name(e.body)},
                e.sender);
}

/// Starts once every expected client joined and main asked to run.
void maybe_start(server_ptr self, const context_ptr& ctx) {
  auto& st = self->state;
  if (st.run_requested && st.round == 0 && st.pending.empty()
      && st.clients.size() >= st.cfg.expected_clients) {
    ctx->log->info("{} clients joined; scoring version 0", st.clients.size());
    evaluate(self, ctx);
  }
}

json eval_record(const eval_report_msg& rep) {
  return json::object{{"test_acc", metric_or(rep.metrics, "acc", NAN)},
                      {"test_acc_norm", metric_or(rep.metrics, "acc_norm", NAN)},
                      {"test_loss", metric_or(rep.metrics, "loss", NAN)},
                      {"version", rep.version}};
}

// -- phases --------------------------------------------------------------------------

caf::behavior finished(server_ptr self, const context_ptr& ctx) {
  auto& st = self->state;
  for (auto& [id, c] : st.clients)
    self->send(c.handle, ctx->seal(envelope{self_name, shutdown_msg{"run complete"}}));
  ctx->event("shutdown", json::object{{"version", st.version}, {"rounds", st.round}});
  json summary = json::object{
    {"scenario", st.cfg.scenario_name},
    {"seed", st.cfg.seed},
    {"rounds", st.round},
    {"final_version", st.version},
    {"clients", st.clients.size()},
    {"tasks_sent", st.tasks_sent},
    {"updates_accepted", st.updates_accepted},
    {"updates_rejected", st.updates_rejected},
    {"initial", json::object{{"global", st.initial_eval}}},
    {"final", json::object{{"global", st.last_eval}}},
    {"per_round", st.rounds},
  };
  st.done.deliver(summary.dump());
  return {
    [=](const wire_buffer&) {}, // the run is over: late messages are dropped
  };
}

caf::behavior evaluating(server_ptr self, const context_ptr& ctx) {
  return {
    [=](const wire_buffer& buf) { return on_wire(self, ctx, buf); },
  };
}

void evaluate(server_ptr self, context_ptr ctx) {
  auto& st = self->state;
  self->become(evaluating(self, ctx));
  eval_request_msg req{st.version, st.prompts, "test"};
  self->request(st.evaluator, caf::infinite, ctx->seal(envelope{self_name, req}))
    .then(
      [=](const wire_buffer& reply) {
        auto& st = self->state;
        auto env = decode(reply);
        json rec;
        if (env && std::holds_alternative<eval_report_msg>(env.value().body)) {
          rec = eval_record(std::get<eval_report_msg>(env.value().body));
        } else {
          auto why = env ? describe(env.value()) : env.err().message();
          ctx->log->error("evaluation of version {} failed: {}", st.version, why);
          rec = json::object{{"version", st.version}, {"error", why}};
        }
        if (st.round == 0) {
          st.initial_eval = rec;
          ctx->log->info("version 0 (before training): test acc {:.3f} acc_norm {:.3f}",
                         rec.find("test_acc") ? rec.find("test_acc")->as_number() : NAN,
                         rec.find("test_acc_norm") ? rec.find("test_acc_norm")->as_number() : NAN);
        } else {
          auto& last = st.rounds.as_array().back();
          for (auto& [k, v] : rec.as_object())
            if (k != "version")
              last.set(k, v);
        }
        st.last_eval = rec;
        if (st.round > 0) {
          auto& last = st.rounds.as_array().back();
          auto num = [&](const char* k) {
            auto* v = last.find(k);
            return v && v->is_number() ? v->as_number() : NAN;
          };
          ctx->log->info(
            "round {}/{} | version {} | updates {}/{} | client loss {:.3f} -> {:.3f} | "
            "test acc {:.3f} acc_norm {:.3f}",
            st.round, st.cfg.federation.rounds, st.version, num("updates"),
            num("selected"), num("mean_loss_before"), num("mean_loss_after"),
            num("test_acc"), num("test_acc_norm"));
        }
        if (st.round >= st.cfg.federation.rounds)
          self->become(finished(self, ctx));
        else
          self->become(collecting(self, ctx));
      },
      [=](caf::error& err) {
        ctx->log->error("evaluator failed: {}", self->system().render(err));
        self->state.done.deliver(err);
        self->quit(err);
      });
}

void close_round(server_ptr self, context_ptr ctx) {
  auto& st = self->state;
  auto per_round = st.cfg.federation.clients_per_round
                     ? st.cfg.federation.clients_per_round
                     : static_cast<std::uint32_t>(st.clients.size());
  auto quorum = st.cfg.federation.quorum ? st.cfg.federation.quorum : per_round;
  // Tasks still pending missed the deadline.
  for (auto& [task, client] : st.pending)
    ctx->event("task_missed", json::object{{"task", task}, {"client", client},
                                           {"round", st.round}});
  auto missed = st.pending.size();
  st.pending.clear();
  self->become(caf::behavior{
    [=](const wire_buffer& buf) { return on_wire(self, ctx, buf); }}); // aggregating
  self->request(st.aggregator, caf::infinite, close_atom::value, st.round, quorum)
    .then(
      [=](const aggregate_outcome& out) {
        auto& st = self->state;
        json rec = json::object{{"round", st.round},
                                {"selected", per_round},
                                {"updates", out.updates.size()},
                                {"missed", missed},
                                {"failed", st.round_failed}};
        if (out.has_result) {
          ++st.version;
          st.prompts = out.prompts;
          st.prompts.version = st.version;
          rec.set("mean_loss_before", out.mean_loss_before);
          rec.set("mean_loss_after", out.mean_loss_after);
          ctx->event("publish", json::object{{"version", st.version},
                                             {"round", st.round}});
        } else {
          ctx->event("round_failed", json::object{{"round", st.round},
                                                  {"reason", out.note},
                                                  {"version", st.version}});
          ctx->log->warn("round {}: no aggregate ({}); keeping version {}",
                         st.round, out.note, st.version);
        }
        rec.set("version", st.version);
        st.rounds.as_array().push_back(std::move(rec));
        evaluate(self, ctx);
      },
      [=](caf::error& err) {
        ctx->log->error("aggregator failed: {}", self->system().render(err));
        self->state.done.deliver(err);
        self->quit(err);
      });
}

void start_round(server_ptr self, const context_ptr& ctx) {
  auto& st = self->state;
  ++st.round;
  st.round_accepted = 0;
  st.round_failed = 0;
  std::vector<std::uint32_t> ids;
  for (auto& [id, c] : st.clients)
    ids.push_back(id);
  rng r(mix_seed(st.cfg.seed, st.round));
  shuffle(ids, r);
  auto k = st.cfg.federation.clients_per_round;
  if (k != 0 && k < ids.size())
    ids.resize(k);
  std::sort(ids.begin(), ids.end());
  auto deadline_s = st.cfg.federation.round_deadline_s;
  auto deadline = ctx->now() + deadline_s;
  auto& tr = st.cfg.training;
  for (auto id : ids) {
    auto task_id = ++st.next_task;
    st.pending[task_id] = id;
    ++st.tasks_sent;
    self->send(st.aggregator, open_atom::value,
               task_expectation{task_id, id, st.version, st.round});
    task_msg t{task_id, id, st.version, st.prompts,
               tr.local_steps, static_cast<float>(tr.learning_rate), tr.batch_size,
               mix_seed(st.cfg.seed, 1'000'000 + task_id), deadline, st.round};
    ctx->event("task", json::object{{"task", task_id}, {"client", id},
                                    {"round", st.round}, {"base_version", st.version}});
    self->send(st.clients[id].handle, ctx->seal(envelope{self_name, std::move(t)}));
  }
  self->delayed_send(self,
                     std::chrono::microseconds(static_cast<std::int64_t>(deadline_s * 1e6)),
                     timeout_atom::value, st.round);
}

caf::behavior collecting(server_ptr self, const context_ptr& ctx) {
  start_round(self, ctx);
  auto settle = [=] {
    if (self->state.pending.empty())
      close_round(self, ctx);
  };
  return {
    [=](const wire_buffer& buf) {
      auto reply = on_wire(self, ctx, buf);
      settle();
      return reply;
    },
    [=](accepted_atom, std::uint64_t task) {
      auto& st = self->state;
      if (st.pending.erase(task)) {
        ++st.round_accepted;
        ++st.updates_accepted;
      }
      settle();
    },
    [=](rejected_atom, std::uint64_t task) {
      auto& st = self->state;
      ++st.updates_rejected;
      if (st.pending.erase(task))
        ++st.round_failed;
      settle();
    },
    [=](timeout_atom, std::uint32_t round) {
      if (round == self->state.round && !self->state.pending.empty()) {
        ctx->log->warn("round {} deadline: {} task(s) still open", round,
                       self->state.pending.size());
        close_round(self, ctx);
      }
    },
  };
}

caf::behavior awaiting_joins(server_ptr self, context_ptr ctx) {
  return {
    [=](const wire_buffer& buf) {
      auto reply = on_wire(self, ctx, buf);
      maybe_start(self, ctx);
      return reply;
    },
    [=](aggregator_atom) { return self->state.aggregator; },
    [=](run_atom) {
      auto& st = self->state;
      st.done = self->make_response_promise();
      st.run_requested = true;
      maybe_start(self, ctx);
      return st.done;
    },
  };
}

} // namespace

caf::behavior server(caf::stateful_actor<server_state>* self, context_ptr ctx,
                     server_config cfg) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  st.prompts = st.cfg.initial;
  st.version = st.prompts.version;
  auto me = caf::actor_cast<caf::actor>(self);
  st.aggregator = self->spawn<caf::linked>(aggregator, ctx, me, st.cfg.layout);
  st.evaluator = self->spawn<caf::linked>(evaluator, ctx, st.cfg.eval_worker,
                                          st.cfg.test_data);
  self->set_default_handler(caf::skip);
  self->set_down_handler([=](caf::down_msg& dm) {
    auto& st = self->state;
    for (auto it = st.clients.begin(); it != st.clients.end(); ++it) {
      if (it->second.handle.address() != dm.source)
        continue;
      auto id = it->first;
      ctx->event("client_down", json::object{{"client", id}});
      for (auto p = st.pending.begin(); p != st.pending.end();)
        if (p->second == id) {
          p = st.pending.erase(p);
          ++st.round_failed;
        } else {
          ++p;
        }
      st.clients.erase(it);
      break;
    }
  });
  return awaiting_joins(self, ctx);
}

} // namespace fedsp
