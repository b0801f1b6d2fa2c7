// The server's versions: aggregate, server step, publish, score.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>

#include "actors/server_state.hpp"
#include "runtime/rng.hpp"

namespace fedsp::server_room {

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
      [=](caf::error& err) { fail(self, ctx, err, "evaluator"); });
}

/// Local-only: every client's own prompts are scored and averaged.
void score_each_client(server_ptr self, const context_ptr& ctx,
                       std::shared_ptr<std::vector<json>> acc, std::vector<std::uint32_t> ids,
                       std::function<void(json)> then) {
  if (ids.empty()) {
    double a = 0, an = 0;
    json per = json::array{};
    for (auto& r : *acc) {
      a += number_at(r, {"global", "test_acc"});
      an += number_at(r, {"global", "test_acc_norm"});
      per.as_array().push_back(number_at(r, {"global", "test_acc"}));
    }
    auto n = static_cast<double>(std::max<std::size_t>(1, acc->size()));
    then(json::object{{"global", json::object{{"test_acc", a / n}, {"test_acc_norm", an / n}}},
                      {"version", self->state.version},
                      {"per_client_test_acc", per}});
    return;
  }
  auto id = ids.back();
  ids.pop_back();
  auto& st = self->state;
  auto it = st.own_prompts.find(id);
  score(self, ctx, it == st.own_prompts.end() ? st.prompts() : it->second, [=](json rec) {
    acc->push_back(std::move(rec));
    score_each_client(self, ctx, acc, ids, then);
  });
}

/// Scores the current version (if `due`) and records it; then `next`.
void evaluate(server_ptr self, const context_ptr& ctx, bool due, std::function<void()> next) {
  auto& st = self->state;
  auto record = [=](json rec) {
    auto& st = self->state;
    st.last_eval_version = st.version;
    if (st.version == 0 && st.rounds.as_array().empty()) {
      st.initial_eval = rec;
      auto acc = number_at(rec, {"global", "test_acc"});
      if (std::isnan(acc))
        ctx->log->info("version 0 (before training): not scored");
      else
        ctx->log->info("version 0 (before training): test acc {:.3f} acc_norm {:.3f}", acc,
                       number_at(rec, {"global", "test_acc_norm"}));
    } else if (!st.rounds.as_array().empty() && rec.find("global") != nullptr) {
      auto& last = st.rounds.as_array().back();
      last.set("test_acc", number_at(rec, {"global", "test_acc"}));
      last.set("test_acc_norm", number_at(rec, {"global", "test_acc_norm"}));
      last.set("test_loss", number_at(rec, {"global", "test_loss"}));
      if (rec.find("aux") != nullptr) {
        last.set("aux_test_acc", number_at(rec, {"aux", "test_acc"}));
        last.set("aux_test_acc_norm", number_at(rec, {"aux", "test_acc_norm"}));
      }
    }
    if (rec.find("global") != nullptr)
      st.last_eval = rec;
    next();
  };
  if (!due) {
    next();
    return;
  }
  st.busy = true;
  if (!st.cfg.plan.aggregate && st.version > 0) { // local-only: each client's own prompts
    std::vector<std::uint32_t> ids;
    for (auto& [id, c] : st.clients)
      ids.push_back(id);
    score_each_client(self, ctx, std::make_shared<std::vector<json>>(), ids, record);
    return;
  }
  score(self, ctx, st.prompts(), record);
}

void log_progress(server_ptr self, const context_ptr& ctx) {
  auto& st = self->state;
  auto& f = sc_of(self).federation;
  auto& last = st.rounds.as_array().back();
  auto num = [&](const char* k) { return number_at(last, {k}); };
  auto where = is_async(self) ? fmt::format("version {}/{}", st.version, f.max_versions())
                              : fmt::format("round {}/{} | version {}", st.round, f.rounds,
                                            st.version);
  // A version the evaluator did not score (eval.every) says so, not "nan".
  auto scored = std::isnan(num("test_acc"))
                  ? std::string("not scored")
                  : fmt::format("test acc {:.3f} acc_norm {:.3f}", num("test_acc"),
                                num("test_acc_norm"))
                      + (std::isnan(num("aux_test_acc"))
                           ? std::string()
                           : fmt::format(" | aux acc {:.3f}", num("aux_test_acc")));
  auto losses = std::isnan(num("mean_loss_before"))
                  ? std::string("no client loss")
                  : fmt::format("client loss {:.3f} -> {:.3f}", num("mean_loss_before"),
                                num("mean_loss_after"));
  ctx->log->info("{} | t {:.1f} s | updates {} | {} | {} | accepted {} late {} stale {} "
                 "dropouts {}",
                 where, now(self), num("updates"), losses, scored, st.updates_accepted,
                 st.updates_late, st.updates_stale, st.dropouts);
}


void after_version(server_ptr self, const context_ptr& ctx) {
  log_progress(self, ctx);
  go_on(self, ctx);
}

/// Is version `v` (or the last) due for scoring?
bool eval_due(server_ptr self, bool last) {
  auto& st = self->state;
  auto every = sc_of(self).eval.every;
  auto step = is_async(self) ? st.version : st.round;
  return last || step % every == 0;
}


void publish(server_ptr self, const context_ptr& ctx, prompt_set prompts, json rec) {
  auto& st = self->state;
  ++st.version;
  prompts.version = st.version;
  st.set_prompts(std::move(prompts));
  self->send(st.aggregator, version_atom::value, st.version,
             sc_of(self).federation.max_staleness, sc_of(self).federation.staleness);
  rec.set("version", st.version);
  st.rounds.as_array().push_back(std::move(rec));
  // On disk before it is announced: `updates` are the accepted updates this
  // version folds in, each in exactly one publish event.
  json ev = json::object{{"version", st.version}, {"round", st.round}, {"updates", st.last_folded}};
  if (!save_checkpoint(self, ctx, ev))
    return; // not announced: a resume folds these updates into this version
  ctx->event("publish", ev);
  evaluate(self, ctx, eval_due(self, last_step(self)), [=] { after_version(self, ctx); });
}

/// Asks the aggregator for an aggregate and publishes it (FedSP: after the
/// server step). `round` 0 in async mode.
void aggregate(server_ptr self, const context_ptr& ctx, std::uint32_t round,
               std::uint32_t min_updates, json rec) {
  auto& st = self->state;
  auto& f = sc_of(self).federation;
  st.busy = true;
  aggregate_request req;
  req.round = round;
  req.close_round = f.late_updates == "drop";
  req.min_updates = min_updates;
  req.version = st.version;
  req.current = st.prompts_ptr;
  req.strategy = f.aggregator;
  req.staleness = f.staleness;
  req.eta = f.server_rate;
  req.alpha = f.fedasync_alpha;
  auto agg = st.aggregator;
  self->request(agg, caf::infinite, close_atom::value, std::move(req))
    .then(
      [=](aggregate_outcome& out) mutable {
        auto& st = self->state;
        st.updates_discarded += out.discarded;
        st.updates_held = out.held;
        st.wal_consumed = out.wal_consumed;
        st.last_folded = json::array{};
        for (auto id : out.updates)
          st.last_folded.as_array().push_back(id);
        rec.set("t", now(self));
        rec.set("updates", out.updates.size());
        if (!out.has_result) {
          ctx->event("round_failed", json::object{{"round", round},
                                                  {"reason", out.note},
                                                  {"version", st.version}});
          ctx->log->warn("round {}: no aggregate ({}); keeping version {}", round, out.note,
                         st.version);
          rec.set("version", st.version);
          st.rounds.as_array().push_back(std::move(rec));
          if (!save_checkpoint(self, ctx, json()))
            return;
          evaluate(self, ctx, last_step(self), [=] { after_version(self, ctx); });
          return;
        }
        st.updates_aggregated += out.updates.size();
        st.unaggregated = 0;
        std::uint64_t stale = 0;
        for (auto s : out.staleness)
          stale += s > 0;
        rec.set("stale_updates", stale);
        rec.set("mean_loss_before", out.mean_loss_before);
        rec.set("mean_loss_after", out.mean_loss_after);
        rec.set("client_seconds", out.mean_train_seconds);
        rec.set("client_flops", out.mean_flops);
        if (!st.cfg.plan.aggregate) { // local-only: each keeps its own
          for (auto& [id, ps] : out.per_client)
            st.own_prompts[id] = ps;
          publish(self, ctx, st.prompts(), std::move(rec));
          return;
        }
        if (!st.cfg.plan.server_step) {
          publish(self, ctx, std::move(out.prompts), std::move(rec));
          return;
        }
        // FedSP: the aggregated prompts are tuned on the global model first.
        auto step = std::make_shared<result<server_step_report>>(error{errc::unknown, "not run"});
        auto session = st.cfg.session;
        auto avg = std::make_shared<prompt_set>(std::move(out.prompts));
        auto seed = mix_seed(sc_of(self).seed, 500'000 + st.version + 1);
        compute_job job{[=](const std::string&) { *step = session->server_step(*avg, seed); }};
        self->request(st.cfg.worker, caf::infinite, run_atom::value, std::move(job))
          .then(
            [=](double) mutable {
              if (!step->ok()) {
                ctx->log->error("server step failed: {}; publishing the aggregate",
                                step->err().message());
                publish(self, ctx, *avg, std::move(rec));
                return;
              }
              auto& s = step->value();
              ctx->event("server_step", json::object{{"version", self->state.version + 1},
                                                     {"loss_before", s.loss_before},
                                                     {"loss_after", s.loss_after},
                                                     {"examples", s.examples},
                                                     {"wall_seconds", s.seconds}});
              rec.set("server_loss_before", s.loss_before);
              rec.set("server_loss_after", s.loss_after);
              self->state.server_step_state = std::move(s.optimizer_state);
              publish(self, ctx, s.prompts, std::move(rec));
            },
            [=](caf::error& err) { fail(self, ctx, err, "worker"); });
      },
      [=](caf::error&) mutable { // it died: ask the one that replaces it
        restart_aggregator(self, ctx, agg.address());
        aggregate(self, ctx, round, min_updates, std::move(rec));
      });
}

// -- tasks ----------------------------------------------------------------------------


} // namespace fedsp::server_room
