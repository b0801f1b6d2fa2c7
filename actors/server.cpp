#include "actors/server.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "runtime/rng.hpp"

namespace fedsp {

namespace {

const std::string self_name = "server";

using server_ptr = caf::stateful_actor<server_state>*;

caf::behavior awaiting_joins(server_ptr self, const context_ptr& ctx);
caf::behavior collecting(server_ptr self, const context_ptr& ctx);
void evaluate(server_ptr self, const context_ptr& ctx);

/// Seals a message for client `id`, counting its bytes.
wire_buffer to_client(const context_ptr& ctx, std::uint32_t id, message_body body) {
  auto buf = ctx->seal(envelope{self_name, std::move(body)});
  if (ctx->traffic != nullptr)
    ctx->traffic->to_client(id, buf.size_bytes());
  return buf;
}

// -- shared handlers -----------------------------------------------------------------

/// Every envelope sent to the server is answered with one: Join with Welcome
/// (then the client's model follows in chunks), a client's Reject of its own
/// task (it could not train it) with Ack, and anything else with a Reject.
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
      return refuse(error{errc::unknown_sender, "join without a reply address"}, e.sender);
    auto id = join->client_id;
    st.clients[id] = {handle, join->num_samples};
    self->monitor(handle);
    if (ctx->traffic != nullptr)
      ctx->traffic->from_client(id, buf.size_bytes());
    ctx->event("join", json::object{{"client", id}, {"num_samples", join->num_samples}});
    auto& chunks = st.model_chunks;
    welcome_msg w{id, st.version, st.cfg.session->layout(),
                  chunks.empty() ? "" : chunks.front().model_id,
                  chunks.empty() ? 0 : chunks.front().total_bytes,
                  static_cast<std::uint32_t>(chunks.size())};
    // The model goes out once, right behind the Welcome and before any Task.
    for (auto& c : chunks) {
      auto buf = ctx->seal(envelope{self_name, c});
      if (ctx->traffic != nullptr)
        ctx->traffic->model_to_client(id, buf.size_bytes());
      self->send(handle, std::move(buf));
    }
    return to_client(ctx, id, std::move(w));
  }
  if (auto* rej = std::get_if<reject_msg>(&e.body)) {
    auto it = st.pending.find(rej->task_id);
    if (it == st.pending.end() || e.sender != client_name(it->second))
      return refuse(error{errc::unknown_task, "no open task " + std::to_string(rej->task_id)
                                                + " of '" + e.sender + "'"},
                    e.sender);
    ctx->log->warn("{} could not train task {}: {}", e.sender, rej->task_id, rej->text);
    st.pending.erase(it);
    ++st.round_failed;
    return ctx->seal(envelope{self_name, ack_msg{rej->task_id}});
  }
  return refuse(error{errc::unsupported,
                      std::string("server takes join or reject, got ") + kind_name(e.body)},
                e.sender);
}

/// Starts once prepared, every expected client joined and main asked to run.
void maybe_start(server_ptr self, const context_ptr& ctx) {
  auto& st = self->state;
  if (st.prepared && st.run_requested && st.round == 0 && st.pending.empty()
      && st.clients.size() >= st.cfg.expected_clients) {
    ctx->log->info("{} clients joined; scoring version 0", st.clients.size());
    evaluate(self, ctx);
  }
}

json eval_record(const eval_report_msg& rep) {
  auto m = [&](const char* k) { return metric_or(rep.metrics, k, NAN); };
  json rec = json::object{{"global", json::object{{"test_acc", m("acc")},
                                                  {"test_acc_norm", m("acc_norm")},
                                                  {"test_loss", m("loss")}}},
                          {"version", rep.version}};
  if (!std::isnan(m("aux_acc")))
    rec.set("aux", json::object{{"test_acc", m("aux_acc")}, {"test_acc_norm", m("aux_acc_norm")}});
  return rec;
}

double number(const json& j, std::initializer_list<const char*> path) {
  const json* at = &j;
  for (auto* k : path) {
    at = at->find(k);
    if (at == nullptr)
      return NAN;
  }
  return at->is_number() ? at->as_number() : NAN;
}

// -- phases --------------------------------------------------------------------------

caf::behavior finished(server_ptr self, const context_ptr& ctx) {
  auto& st = self->state;
  for (auto& [id, c] : st.clients)
    self->send(c.handle, to_client(ctx, id, shutdown_msg{"run complete"}));
  ctx->event("shutdown", json::object{{"version", st.version}, {"rounds", st.round}});
  auto& session = *st.cfg.session;
  json traffic = json::object{};
  if (ctx->traffic != nullptr)
    for (auto& [id, t] : ctx->traffic->totals())
      traffic.set(client_name(id), json::object{{"bytes_received", t.to_client},
                                                 {"bytes_sent", t.from_client},
                                                 {"model_bytes_received", t.model}});
  json summary = json::object{
    {"scenario", st.cfg.sc->name},
    {"method", st.cfg.sc->method.name},
    {"seed", st.cfg.sc->seed},
    {"rounds", st.round},
    {"final_version", st.version},
    {"clients", st.clients.size()},
    {"tasks_sent", st.tasks_sent},
    {"updates_accepted", st.updates_accepted},
    {"updates_rejected", st.updates_rejected},
    {"parameters", json::object{{"global", session.global_parameters()},
                                {"auxiliary", session.aux_parameters()},
                                {"client_model_bytes", session.client_model().size()}}},
    {"distillation", st.distillation},
    {"initial", st.initial_eval},
    {"final", st.last_eval},
    {"traffic", traffic},
    {"per_round", st.rounds},
  };
  st.done.deliver(summary.dump());
  return {
    [=](const wire_buffer&) {}, // the run is over: late messages are dropped
  };
}

void log_round(server_ptr self, const context_ptr& ctx) {
  auto& st = self->state;
  auto& last = st.rounds.as_array().back();
  auto num = [&](const char* k) { return number(last, {k}); };
  ctx->log->info("round {}/{} | version {} | updates {}/{} | client loss {:.3f} -> {:.3f} | "
                 "test acc {:.3f} acc_norm {:.3f} | aux acc {:.3f}",
                 st.round, st.cfg.sc->federation.rounds, st.version, num("updates"),
                 num("selected"), num("mean_loss_before"), num("mean_loss_after"),
                 num("test_acc"), num("test_acc_norm"), num("aux_test_acc"));
}

caf::behavior evaluating(server_ptr self, const context_ptr& ctx) {
  return {
    [=](const wire_buffer& buf) { return on_wire(self, ctx, buf); },
  };
}

/// Scores `prompts` through the evaluator; `then` gets the eval record.
template <class Then>
void score(server_ptr self, const context_ptr& ctx, prompt_set prompts, Then then) {
  auto& st = self->state;
  eval_request_msg req{st.version, std::move(prompts), "test"};
  self->request(st.evaluator, caf::infinite, ctx->seal(envelope{self_name, std::move(req)}))
    .then(
      [=](const wire_buffer& reply) {
        auto env = decode(reply);
        if (env && std::holds_alternative<eval_report_msg>(env.value().body)) {
          then(eval_record(std::get<eval_report_msg>(env.value().body)));
          return;
        }
        auto why = env ? describe(env.value()) : env.err().message();
        ctx->log->error("evaluation failed: {}", why);
        then(json::object{{"version", self->state.version}, {"error", why}});
      },
      [=](caf::error& err) {
        ctx->log->error("evaluator failed: {}", self->system().render(err));
        self->state.done.deliver(err);
        self->quit(err);
      });
}

/// Local-only: every client's own prompts are scored and averaged.
void score_each_client(server_ptr self, const context_ptr& ctx,
                       std::shared_ptr<std::vector<json>> acc, std::vector<std::uint32_t> ids,
                       std::function<void(json)> then) {
  if (ids.empty()) {
    double a = 0, an = 0;
    for (auto& r : *acc) {
      a += number(r, {"global", "test_acc"});
      an += number(r, {"global", "test_acc_norm"});
    }
    auto n = static_cast<double>(std::max<std::size_t>(1, acc->size()));
    json per = json::array{};
    for (auto& r : *acc)
      per.as_array().push_back(number(r, {"global", "test_acc"}));
    then(json::object{{"global", json::object{{"test_acc", a / n}, {"test_acc_norm", an / n}}},
                      {"version", self->state.version},
                      {"per_client_test_acc", per}});
    return;
  }
  auto id = ids.back();
  ids.pop_back();
  auto& st = self->state;
  auto it = st.own_prompts.find(id);
  score(self, ctx, it == st.own_prompts.end() ? st.prompts : it->second,
        [=](json rec) {
          acc->push_back(std::move(rec));
          score_each_client(self, ctx, acc, ids, then);
        });
}

void evaluate(server_ptr self, const context_ptr& ctx) {
  auto& st = self->state;
  self->become(evaluating(self, ctx));
  auto next = [=](json rec) {
    auto& st = self->state;
    if (st.round == 0) {
      st.initial_eval = rec;
      ctx->log->info("version 0 (before training): test acc {:.3f} acc_norm {:.3f}",
                     number(rec, {"global", "test_acc"}), number(rec, {"global", "test_acc_norm"}));
    } else if (rec.find("global") == nullptr) {
      log_round(self, ctx);
    } else {
      auto& last = st.rounds.as_array().back();
      last.set("test_acc", number(rec, {"global", "test_acc"}));
      last.set("test_acc_norm", number(rec, {"global", "test_acc_norm"}));
      if (rec.find("aux") != nullptr) {
        last.set("aux_test_acc", number(rec, {"aux", "test_acc"}));
        last.set("aux_test_acc_norm", number(rec, {"aux", "test_acc_norm"}));
      }
      log_round(self, ctx);
    }
    if (rec.find("global") != nullptr)
      st.last_eval = rec;
    if (st.round >= st.cfg.sc->federation.rounds)
      self->become(finished(self, ctx));
    else
      self->become(collecting(self, ctx));
  };
  bool last_round = st.round >= st.cfg.sc->federation.rounds;
  if (st.round > 0 && !last_round && st.round % st.cfg.sc->eval.every != 0) {
    next(json::object{{"version", st.version}}); // not scored this round
    return;
  }
  if (!st.cfg.plan.aggregate && st.round > 0) {
    if (!last_round) { // local-only: clients' prompts are scored at the end only
      next(json::object{{"version", st.version}});
      return;
    }
    std::vector<std::uint32_t> ids;
    for (auto& [id, c] : st.clients)
      ids.push_back(id);
    score_each_client(self, ctx, std::make_shared<std::vector<json>>(), ids, next);
    return;
  }
  score(self, ctx, st.prompts, next);
}

/// Publishes `prompts` as the next version and moves on to evaluation.
void publish(server_ptr self, const context_ptr& ctx, prompt_set prompts, json rec) {
  auto& st = self->state;
  ++st.version;
  st.prompts = std::move(prompts);
  st.prompts.version = st.version;
  ctx->event("publish", json::object{{"version", st.version}, {"round", st.round}});
  rec.set("version", st.version);
  st.rounds.as_array().push_back(std::move(rec));
  evaluate(self, ctx);
}

void close_round(server_ptr self, const context_ptr& ctx) {
  auto& st = self->state;
  auto per_round = st.cfg.sc->federation.clients_per_round
                     ? st.cfg.sc->federation.clients_per_round
                     : static_cast<std::uint32_t>(st.clients.size());
  auto quorum = st.cfg.sc->federation.quorum ? st.cfg.sc->federation.quorum : per_round;
  for (auto& [task, client] : st.pending)
    ctx->event("task_missed", json::object{{"task", task}, {"client", client}, {"round", st.round}});
  auto missed = st.pending.size();
  st.pending.clear();
  self->become(caf::behavior{
    [=](const wire_buffer& buf) { return on_wire(self, ctx, buf); }}); // aggregating
  self->request(st.aggregator, caf::infinite, close_atom::value, st.round, quorum)
    .then(
      [=](const aggregate_outcome& out) {
        auto& st = self->state;
        json rec = json::object{{"round", st.round},          {"selected", per_round},
                                {"updates", out.updates.size()}, {"missed", missed},
                                {"failed", st.round_failed}};
        if (!out.has_result) {
          ctx->event("round_failed",
                     json::object{{"round", st.round}, {"reason", out.note}, {"version", st.version}});
          ctx->log->warn("round {}: no aggregate ({}); keeping version {}", st.round, out.note,
                         st.version);
          rec.set("version", st.version);
          st.rounds.as_array().push_back(std::move(rec));
          evaluate(self, ctx);
          return;
        }
        rec.set("mean_loss_before", out.mean_loss_before);
        rec.set("mean_loss_after", out.mean_loss_after);
        rec.set("client_seconds", out.mean_train_seconds);
        rec.set("client_flops", out.mean_flops);
        if (!st.cfg.plan.aggregate) { // local-only: each keeps its own
          for (auto& [id, ps] : out.per_client)
            st.own_prompts[id] = ps;
          publish(self, ctx, st.prompts, std::move(rec));
          return;
        }
        if (!st.cfg.plan.server_step) {
          publish(self, ctx, out.prompts, std::move(rec));
          return;
        }
        // FedSP: the averaged prompts are tuned on the global model first.
        auto step = std::make_shared<result<server_step_report>>(error{errc::unknown, "not run"});
        auto session = st.cfg.session;
        auto avg = std::make_shared<prompt_set>(out.prompts);
        auto seed = mix_seed(st.cfg.sc->seed, 500'000 + st.round);
        compute_job job{[=] { *step = session->server_step(*avg, seed); }};
        self->request(st.cfg.worker, caf::infinite, run_atom::value, std::move(job))
          .then(
            [=](double) mutable {
              if (!step->ok()) {
                ctx->log->error("server step failed: {}; publishing the average",
                                step->err().message());
                publish(self, ctx, *avg, std::move(rec));
                return;
              }
              auto& s = step->value();
              ctx->event("server_step", json::object{{"round", self->state.round},
                                                     {"loss_before", s.loss_before},
                                                     {"loss_after", s.loss_after},
                                                     {"seconds", s.seconds}});
              rec.set("server_loss_before", s.loss_before);
              rec.set("server_loss_after", s.loss_after);
              publish(self, ctx, s.prompts, std::move(rec));
            },
            [=](caf::error& err) {
              self->state.done.deliver(err);
              self->quit(err);
            });
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
  st.round_failed = 0;
  std::vector<std::uint32_t> ids;
  for (auto& [id, c] : st.clients)
    ids.push_back(id);
  rng r(mix_seed(st.cfg.sc->seed, st.round));
  shuffle(ids, r);
  auto k = st.cfg.sc->federation.clients_per_round;
  if (k != 0 && k < ids.size())
    ids.resize(k);
  std::sort(ids.begin(), ids.end());
  auto deadline_s = st.cfg.sc->federation.round_deadline_s;
  auto deadline = ctx->now() + deadline_s;
  auto& tr = st.cfg.sc->training;
  for (auto id : ids) {
    auto task_id = ++st.next_task;
    st.pending[task_id] = id;
    ++st.tasks_sent;
    self->send(st.aggregator, open_atom::value, task_expectation{task_id, id, st.version, st.round});
    auto own = st.own_prompts.find(id);
    const auto& prompts = !st.cfg.plan.aggregate && own != st.own_prompts.end() ? own->second
                                                                                  : st.prompts;
    task_msg t{task_id,       id,          st.version,    prompts,
               tr.prompt_steps, static_cast<float>(tr.prompt_lr), tr.batch_size,
               mix_seed(st.cfg.sc->seed, 1'000'000 + task_id), deadline, st.round};
    t.prompts.version = st.version;
    ctx->event("task", json::object{{"task", task_id}, {"client", id}, {"round", st.round},
                                    {"base_version", st.version}});
    self->send(st.clients[id].handle, to_client(ctx, id, std::move(t)));
  }
  self->delayed_send(self, std::chrono::microseconds(static_cast<std::int64_t>(deadline_s * 1e6)),
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
      if (st.pending.erase(task))
        ++st.updates_accepted;
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

caf::behavior awaiting_joins(server_ptr self, const context_ptr& ctx) {
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

/// Builds (and distils) the model clients receive, on the worker. Joins wait
/// in the mailbox meanwhile (they are skipped until awaiting_joins).
caf::behavior preparing(server_ptr self, const context_ptr& ctx) {
  auto& st = self->state;
  auto out = std::make_shared<result<distill_report_summary>>(error{errc::unknown, "not run"});
  auto session = st.cfg.session;
  ctx->log->info("preparing the {} method{}", st.cfg.sc->method.name,
                 st.cfg.plan.ship_auxiliary ? ": building and distilling the auxiliary model" : "");
  self->request(st.cfg.worker, caf::infinite, run_atom::value,
                compute_job{[=] { *out = session->prepare(); }})
    .then(
      [=](double seconds) {
        auto& st = self->state;
        if (!out->ok()) {
          ctx->log->error("preparing failed: {}", out->err().message());
          self->quit(caf::make_error(caf::sec::runtime_error, out->err().message()));
          return;
        }
        auto& d = out->value();
        if (d.steps > 0) {
          st.distillation = json::object{{"steps", d.steps}, {"loss_first", d.loss_first},
                                         {"loss_last", d.loss_last}, {"heldout", d.heldout},
                                         {"seconds", d.seconds}};
          ctx->event("distill", st.distillation);
          ctx->log->info("distilled the auxiliary model: {} steps, loss {:.4f} -> {:.4f} "
                         "(held-out {:.4f}), {:.0f} s",
                         d.steps, d.loss_first, d.loss_last, d.heldout, d.seconds);
        }
        auto& model = st.cfg.session->client_model();
        if (!model.empty())
          st.model_chunks = split_model(st.cfg.session->client_model_id(), model,
                                        st.cfg.sc->method.chunk_bytes);
        ctx->event("prepared", json::object{{"seconds", seconds},
                                            {"client_model", st.cfg.session->client_model_id()},
                                            {"client_model_bytes", model.size()},
                                            {"chunks", st.model_chunks.size()}});
        st.prepared = true;
        self->become(awaiting_joins(self, ctx));
        maybe_start(self, ctx);
      },
      [=](caf::error& err) { self->quit(err); });
  return {
    [=](aggregator_atom) { return self->state.aggregator; },
  };
}

} // namespace

caf::behavior server(caf::stateful_actor<server_state>* self, context_ptr ctx, server_config cfg) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  st.prompts = st.cfg.session->initial_prompts();
  st.version = st.prompts.version;
  auto me = caf::actor_cast<caf::actor>(self);
  st.aggregator = self->spawn<caf::linked>(aggregator, ctx, me, st.cfg.session->layout());
  st.evaluator = self->spawn<caf::linked>(evaluator, ctx, st.cfg.worker, st.cfg.session);
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
  return preparing(self, ctx);
}

} // namespace fedsp
