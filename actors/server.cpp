#include "actors/server.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>

#include "runtime/rng.hpp"

namespace fedsp {

namespace {

const std::string self_name = "server";

using server_ptr = caf::stateful_actor<server_state>*;
using task_entry = server_state::task_entry;

// Timeline tags: what an entry means, in the top byte; an id below.
enum tag_kind : std::uint64_t { task_result = 1, deadline = 2, dropout = 3, retry = 4 };
std::uint64_t tag(tag_kind k, std::uint64_t id) { return (std::uint64_t{k} << 56) | id; }
tag_kind kind_of(std::uint64_t t) { return static_cast<tag_kind>(t >> 56); }
std::uint64_t id_of(std::uint64_t t) { return t & ((std::uint64_t{1} << 56) - 1); }

void pump(server_ptr self, const context_ptr& ctx);
void answered(server_ptr self, const context_ptr& ctx);
caf::result<wire_buffer> on_update(server_ptr self, const context_ptr& ctx, wire_buffer& buf,
                                   const envelope_head& head);
caf::result<wire_buffer> on_answer(server_ptr self, const context_ptr& ctx,
                                   const std::string& sender, std::uint64_t task_id,
                                   wire_buffer* buf, const std::string& refusal);
void start_round(server_ptr self, const context_ptr& ctx);
void refill(server_ptr self, const context_ptr& ctx);
void finish_run(server_ptr self, const context_ptr& ctx, const std::string& why);
void restart_aggregator(server_ptr self, const context_ptr& ctx, const caf::actor_addr& dead);

const scenario& sc_of(server_ptr self) { return *self->state.cfg.sc; }
bool is_async(server_ptr self) { return sc_of(self).federation.mode == "async"; }
bool is_virtual(server_ptr self) { return sc_of(self).federation.clock == "virtual"; }

/// The time of the run: the timeline's on the virtual clock, else the wall's.
double now(server_ptr self) {
  return is_virtual(self) ? self->state.cfg.clock->now() : self->state.wall.now();
}

/// Seals a message for client `id`, counting its bytes.
wire_buffer to_client(const context_ptr& ctx, std::uint32_t id, message_body body) {
  auto buf = ctx->seal(envelope{self_name, std::move(body)});
  if (ctx->traffic != nullptr)
    ctx->traffic->to_client(id, buf.size_bytes());
  return buf;
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

/// Stops the actor after an internal failure (a crashed worker or helper).
void fail(server_ptr self, const context_ptr& ctx, const caf::error& err, const char* what) {
  ctx->log->error("{} failed: {}", what, self->system().render(err));
  self->state.done.deliver(err);
  self->quit(err);
}

// -- incoming envelopes ---------------------------------------------------------------

/// Counts a Reject (by its reason) the aggregator answered with.
void count_reject(server_ptr self, const wire_buffer& reply) {
  auto env = decode(reply);
  if (env)
    if (auto* r = std::get_if<reject_msg>(&env.value().body))
      ++self->state.rejects[to_string(r->reason)];
}

/// A Reject for `from` (about `task`, 0: none), logged and as an event.
wire_buffer refuse(server_ptr self, const context_ptr& ctx, const error& err,
                   const std::string& from, std::uint64_t task = 0) {
  ++self->state.rejects[to_string(err.code)];
  ctx->event("reject", json::object{{"by", self_name},
                                    {"from", from},
                                    {"task", task},
                                    {"reason", to_string(err.code)},
                                    {"text", err.text}});
  ctx->log->warn("server rejected a message from '{}': {}", from, err.message());
  return ctx->seal(envelope{self_name, reject_msg{err.code, err.text, task}});
}

/// Join with Welcome (the model follows in chunks); Update and a client's
/// Reject of its own task are held until the clock reaches the task's
/// result; anything else gets a Reject.
caf::result<wire_buffer> on_wire(server_ptr self, const context_ptr& ctx, wire_buffer& buf) {
  auto& st = self->state;
  auto refuse = [&](const error& err, const std::string& from) {
    return fedsp::refuse(self, ctx, err, from);
  };
  // fedsp serve: a client id speaks only from the node it is bound to.
  auto from_its_node = [&](std::uint32_t id) {
    if (st.cfg.join_token.empty())
      return true;
    auto it = st.owner.find(id);
    auto sender = self->current_sender();
    return it != st.owner.end() && sender && sender->node() == it->second;
  };
  auto not_bound = [&](std::uint32_t id, const std::string& from) {
    return refuse(error{errc::wrong_client, client_name(id) + " is not bound to the node this "
                                              "came from (a node presents the join token and "
                                              "the ids it hosts first)"},
                  from);
  };
  // Updates are routed on their head alone (the aggregator decodes and
  // validates them in full when their time comes).
  auto head = peek(buf);
  if (head && head.value().is_update) {
    if (!from_its_node(head.value().client_id))
      return not_bound(head.value().client_id, head.value().sender);
    return on_update(self, ctx, buf, head.value());
  }
  auto env = decode(buf);
  if (!env)
    return refuse(env.err(), "?");
  auto& e = env.value();
  if (!st.cfg.join_token.empty()) {
    std::uint32_t claimed = 0;
    if (auto* j = std::get_if<join_msg>(&e.body))
      claimed = j->client_id;
    else if (e.sender.rfind("client-", 0) == 0)
      claimed = static_cast<std::uint32_t>(std::strtoul(e.sender.c_str() + 7, nullptr, 10));
    if (!from_its_node(claimed))
      return not_bound(claimed, e.sender);
  }
  if (auto* join = std::get_if<join_msg>(&e.body)) {
    if (e.sender != client_name(join->client_id))
      return refuse(error{errc::wrong_client, "join for " + client_name(join->client_id)
                                                + " sent as '" + e.sender + "'"},
                    e.sender);
    auto handle = caf::actor_cast<client_actor>(self->current_sender());
    if (!handle)
      return refuse(error{errc::unknown_sender, "join without a reply address"}, e.sender);
    if (st.running && st.clients.count(join->client_id))
      return refuse(error{errc::duplicate, client_name(join->client_id) + " already joined"},
                    e.sender);
    auto id = join->client_id;
    auto& c = st.clients[id];
    c.handle = handle;
    c.num_samples = join->num_samples;
    c.profile = id < st.profiles.size() ? st.profiles[id] : client_profile{};
    self->monitor(handle);
    if (ctx->traffic != nullptr)
      ctx->traffic->from_client(id, buf.size_bytes());
    auto& chunks = st.model_chunks;
    std::size_t model_bytes = 0;
    for (auto& ch : chunks)
      model_bytes += ch.data.size();
    c.ready_at = now(self) + (model_bytes > 0 ? c.profile.transfer_seconds(model_bytes) : 0.0);
    // On the virtual clock joins are logged at the start, in client order.
    if (!is_virtual(self))
      ctx->event("join", json::object{{"client", id}, {"num_samples", join->num_samples}});
    welcome_msg w{id, st.version, st.cfg.session->layout(),
                  chunks.empty() ? "" : chunks.front().model_id,
                  chunks.empty() ? 0 : chunks.front().total_bytes,
                  static_cast<std::uint32_t>(chunks.size())};
    // The model goes out once, right behind the Welcome and before any Task.
    for (auto& ch : chunks) {
      auto b = ctx->seal(envelope{self_name, ch});
      if (ctx->traffic != nullptr)
        ctx->traffic->model_to_client(id, b.size_bytes());
      self->send(handle, std::move(b));
    }
    return to_client(ctx, id, std::move(w));
  }
  if (auto* hb = std::get_if<heartbeat_msg>(&e.body)) {
    auto wall = st.wall.now();
    for (auto id : hb->tasks)
      if (auto it = st.tasks.find(id);
          it != st.tasks.end() && e.sender == client_name(it->second.client))
        it->second.sign = wall;
    return wire_buffer{};
  }
  auto* rej = std::get_if<reject_msg>(&e.body);
  if (rej == nullptr)
    return refuse(error{errc::unsupported, std::string("server takes join, update or reject, got ")
                                             + kind_name(e.body)},
                  e.sender);
  return on_answer(self, ctx, e.sender, rej->task_id, nullptr, rej->text);
}

/// An Update (`buf`) or a client's Reject (`refusal`) for a task: held until
/// the clock reaches the task's result.
caf::result<wire_buffer> on_answer(server_ptr self, const context_ptr& ctx,
                                   const std::string& sender, std::uint64_t task_id,
                                   wire_buffer* buf, const std::string& refusal) {
  auto& st = self->state;
  auto refuse = [&](const error& err) { return fedsp::refuse(self, ctx, err, sender, task_id); };
  auto it = st.tasks.find(task_id);
  if (it == st.tasks.end() || sender != client_name(it->second.client)) {
    if (st.gone.count(task_id)) { // already a `dropout` event; no second one at a
                                  // wall-clock moment (it would break the order)
      st.gone.erase(task_id);
      answered(self, ctx);
      return ctx->seal(envelope{self_name,
                                reject_msg{errc::task_closed,
                                           "task " + std::to_string(task_id)
                                             + ": its client dropped out mid-task",
                                           task_id}});
    }
    if (buf == nullptr)
      return refuse(error{errc::unknown_task, "no open task " + std::to_string(task_id) + " of '"
                                                + sender + "'"});
    // Not a task this sender holds: the aggregator says exactly why.
    auto rp = self->make_response_promise<wire_buffer>();
    self->request(st.aggregator, caf::infinite, std::move(*buf))
      .then(
        [=](const wire_buffer& reply) mutable {
          count_reject(self, reply);
          rp.deliver(reply);
        },
        [=](caf::error& err) mutable { rp.deliver(err); });
    return rp;
  }
  auto& t = it->second;
  if (t.arrived)
    return refuse(error{errc::duplicate, "task " + std::to_string(task_id) + " already answered"});
  t.arrived = true;
  answered(self, ctx);
  caf::result<wire_buffer> answer = wire_buffer{};
  if (buf != nullptr) { // (its bytes are counted by the aggregator, on acceptance)
    t.update = std::move(*buf);
    t.reply = self->make_response_promise();
    answer = t.reply;
  } else {
    t.refusal = refusal;
    ctx->log->warn("{} could not train task {}: {}", sender, task_id, refusal);
    answer = ctx->seal(envelope{self_name, ack_msg{task_id}});
  }
  if (is_virtual(self)) {
    if (t.entry != 0)
      st.cfg.clock->complete(t.entry);
  } else {
    t.entry = st.cfg.clock->schedule(now(self), tag(task_result, task_id));
  }
  pump(self, ctx);
  return answer;
}

caf::result<wire_buffer> on_update(server_ptr self, const context_ptr& ctx, wire_buffer& buf,
                                   const envelope_head& head) {
  return on_answer(self, ctx, head.sender, head.task_id, &buf, "");
}

// -- evaluation and publishing --------------------------------------------------------

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
      a += number(r, {"global", "test_acc"});
      an += number(r, {"global", "test_acc_norm"});
      per.as_array().push_back(number(r, {"global", "test_acc"}));
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
  score(self, ctx, it == st.own_prompts.end() ? st.prompts : it->second, [=](json rec) {
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
      ctx->log->info("version 0 (before training): test acc {:.3f} acc_norm {:.3f}",
                     number(rec, {"global", "test_acc"}), number(rec, {"global", "test_acc_norm"}));
    } else if (!st.rounds.as_array().empty() && rec.find("global") != nullptr) {
      auto& last = st.rounds.as_array().back();
      last.set("test_acc", number(rec, {"global", "test_acc"}));
      last.set("test_acc_norm", number(rec, {"global", "test_acc_norm"}));
      last.set("test_loss", number(rec, {"global", "test_loss"}));
      if (rec.find("aux") != nullptr) {
        last.set("aux_test_acc", number(rec, {"aux", "test_acc"}));
        last.set("aux_test_acc_norm", number(rec, {"aux", "test_acc_norm"}));
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
  score(self, ctx, st.prompts, record);
}

void log_progress(server_ptr self, const context_ptr& ctx) {
  auto& st = self->state;
  auto& f = sc_of(self).federation;
  auto& last = st.rounds.as_array().back();
  auto num = [&](const char* k) { return number(last, {k}); };
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

/// What happens after a version is published (or a round failed) and scored.
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
  ck.prompts.emplace_back("global", st.prompts);
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
  for (auto& [name, ps] : ck.prompts) {
    if (name == "global") {
      st.prompts = ps;
    } else if (name.rfind("client-", 0) == 0) {
      st.own_prompts[static_cast<std::uint32_t>(std::stoul(name.substr(7)))] = ps;
    }
  }
  for (auto& [name, bytes] : ck.blobs)
    if (name == "server_step_optimizer")
      st.server_step_state = bytes;
  st.prompts.version = st.version;
  st.prompts_ptr = std::make_shared<const prompt_set>(st.prompts);
  st.wall = real_clock(1.0, number(s, {"t"}));
  st.resumed = true;
}

/// Publishes `prompts` as the next version, scores it when due, goes on.
void publish(server_ptr self, const context_ptr& ctx, prompt_set prompts, json rec) {
  auto& st = self->state;
  ++st.version;
  st.prompts = std::move(prompts);
  st.prompts.version = st.version;
  st.prompts_ptr = std::make_shared<const prompt_set>(st.prompts);
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
  req.current = st.prompts;
  req.strategy = f.aggregator;
  req.staleness = f.staleness;
  req.eta = f.server_rate;
  req.alpha = f.fedasync_alpha;
  auto agg = st.aggregator;
  self->request(agg, caf::infinite, close_atom::value, std::move(req))
    .then(
      [=](const aggregate_outcome& out) mutable {
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
          publish(self, ctx, st.prompts, std::move(rec));
          return;
        }
        if (!st.cfg.plan.server_step) {
          publish(self, ctx, out.prompts, std::move(rec));
          return;
        }
        // FedSP: the aggregated prompts are tuned on the global model first.
        auto step = std::make_shared<result<server_step_report>>(error{errc::unknown, "not run"});
        auto session = st.cfg.session;
        auto avg = std::make_shared<prompt_set>(out.prompts);
        auto seed = mix_seed(sc_of(self).seed, 500'000 + st.version + 1);
        compute_job job{[=] { *step = session->server_step(*avg, seed); }};
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

/// Encodes task `t` and sends it to its client; marks it sent.
void send_task(server_ptr self, const context_ptr& ctx, task_entry& t) {
  auto& st = self->state;
  auto& sc = sc_of(self);
  auto c = st.clients.find(t.client);
  if (c == st.clients.end())
    return;
  auto& tr = sc.training;
  task_msg msg{t.id,           t.client,    t.base_version, {},
               t.base,         tr.prompt_steps, static_cast<float>(tr.prompt_lr), tr.batch_size,
               mix_seed(sc.seed, 1'000'000 + t.id), t.deadline, t.round};
  t.sent = true;
  t.sign = st.wall.now();
  ++st.in_flight;
  self->send(c->second.handle, to_client(ctx, t.client, std::move(msg)));
}

/// Virtual clock: sends queued tasks, earliest modelled finish first, while
/// fewer than `max_in_flight` are being computed for real. The timeline
/// only ever waits for the earliest unfinished task, which is then among
/// those sent, so pacing changes memory and speed, never the events.
void flush_sends(server_ptr self, const context_ptr& ctx) {
  auto& st = self->state;
  while (st.in_flight < server_state::max_in_flight && !st.unsent.empty()) {
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

/// The encoded size of a task on the current prompts (the same for every
/// task of a version: fixed-width fields), for modelling its transfer.
std::size_t task_bytes(server_ptr self, const prompt_set& base) {
  auto& st = self->state;
  if (st.task_bytes_version != st.version || st.task_bytes == 0) {
    task_msg probe{0, 0, st.version, base, nullptr, 0, 0.f, 0, 0, 0.0, 0};
    st.task_bytes = encode(envelope{self_name, std::move(probe)}).size_bytes();
    st.task_bytes_version = st.version;
  }
  return st.task_bytes;
}

/// Gives client `id` a task on the current prompts and puts its modelled
/// result on the timeline (or, if it will drop out, its dropout).
void dispatch(server_ptr self, const context_ptr& ctx, std::uint32_t id, std::uint32_t round) {
  auto& st = self->state;
  auto& sc = sc_of(self);
  auto& c = st.clients[id];
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
  c.busy = true;
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
  std::vector<std::uint32_t> ids;
  std::uint32_t offline = 0, busy = 0;
  for (auto& [id, c] : st.clients) {
    if (c.busy)
      ++busy;
    else if (!sc.clients.online.online(id, now(self), st.round, sc.seed)
             || sc.faults.away(id, now(self)))
      ++offline;
    else
      ids.push_back(id);
  }
  rng r(mix_seed(sc.seed, st.round));
  shuffle(ids, r);
  auto per_round = f.clients_per_round ? f.clients_per_round
                                       : static_cast<std::uint32_t>(st.clients.size());
  auto want = static_cast<std::size_t>(std::ceil(per_round * f.over_selection - 1e-9));
  if (ids.size() > want)
    ids.resize(want);
  std::sort(ids.begin(), ids.end());
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
    std::vector<std::uint32_t> idle;
    for (auto& [id, c] : st.clients)
      if (!c.busy)
        idle.push_back(id);
    auto draw = ++st.draws;
    rng r(mix_seed(sc.seed, 3'000'000 + draw));
    shuffle(idle, r);
    std::optional<std::uint32_t> pick;
    for (auto id : idle)
      if (sc.clients.online.online(id, now(self), draw, sc.seed) && !sc.faults.away(id, now(self))) {
        pick = id;
        break;
      }
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
  if (auto c = st.clients.find(entry.client); c != st.clients.end())
    c->second.busy = false;
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
  self->request(agg, caf::infinite, std::move(*entry.update))
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
        if (auto c = st.clients.find(t.client); c != st.clients.end())
          c->second.busy = false;
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

caf::behavior finished(server_ptr self, const context_ptr& ctx) {
  auto& st = self->state;
  for (auto& [id, c] : st.clients)
    self->send(c.handle, to_client(ctx, id, shutdown_msg{"run complete"}));
  // Tasks still out (their clients were slow or their results not yet
  // delivered) are reported, not waited for.
  for (auto& [id, t] : st.tasks)
    if (t.arrived && t.reply.pending())
      t.reply.deliver(ctx->seal(envelope{
        self_name, reject_msg{errc::task_closed, "the run ended before this update was due", id}}));
  ctx->event("shutdown", json::object{{"version", st.version},
                                      {"rounds", st.round},
                                      {"pending_tasks", st.tasks.size()},
                                      {"pending_updates", st.updates_held}});
  auto& session = *st.cfg.session;
  auto& f = sc_of(self).federation;
  json traffic = json::object{};
  if (ctx->traffic != nullptr)
    for (auto& [id, t] : ctx->traffic->totals())
      traffic.set(client_name(id), json::object{{"bytes_received", t.to_client},
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
    {"traffic", traffic},
    {"per_round", st.rounds},
  };
  set_counters(st, summary);
  st.done.deliver(summary.dump());
  return {
    [=](const wire_buffer&) -> wire_buffer { // the run is over
      return ctx->seal(envelope{self_name, reject_msg{errc::task_closed, "the run is over", 0}});
    },
  };
}

void finish_run(server_ptr self, const context_ptr& ctx, const std::string& why) {
  auto& st = self->state;
  if (st.stopping)
    return;
  st.stopping = true;
  ctx->event("stop", json::object{{"reason", why}, {"version", st.version}});
  auto end = [=] {
    self->state.busy = false;
    self->become(finished(self, ctx));
  };
  // The last version is always scored.
  if (st.last_eval_version != st.version)
    evaluate(self, ctx, true, end);
  else
    end();
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

caf::behavior running(server_ptr self, const context_ptr& ctx) {
  return {
    [=](wire_buffer& buf) {
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
    [=](hello_atom, const std::string& token, std::uint32_t first,
        std::uint32_t last) -> caf::result<std::string, std::string, std::uint64_t> {
      auto& st = self->state;
      auto sender = self->current_sender();
      auto refuse_node = [&](const std::string& why) {
        ctx->event("node_refused", json::object{{"first", first}, {"last", last}, {"reason", why}});
        ctx->log->warn("refused a join node (clients {}-{}): {}", first, last, why);
        return caf::make_error(caf::sec::runtime_error, why);
      };
      if (st.cfg.join_token.empty())
        return refuse_node("this server takes no join nodes");
      // Compared in constant time: the token is a secret.
      bool same = token.size() == st.cfg.join_token.size();
      unsigned char diff = 0;
      for (std::size_t i = 0; i < token.size() && same; ++i)
        diff |= static_cast<unsigned char>(token[i] ^ st.cfg.join_token[i]);
      if (!same || diff != 0 || token.empty())
        return refuse_node("wrong join token");
      if (first > last || last >= st.cfg.expected_clients)
        return refuse_node("clients " + std::to_string(first) + "-" + std::to_string(last)
                           + " are not ids of this run (0-"
                           + std::to_string(st.cfg.expected_clients - 1) + ")");
      if (!sender)
        return refuse_node("no node to bind to");
      for (auto id = first; id <= last; ++id) {
        auto it = st.owner.find(id);
        if (it != st.owner.end() && it->second != sender->node() && st.clients.count(id))
          return refuse_node(client_name(id) + " is held by another node whose clients are "
                                               "still joined");
      }
      for (auto id = first; id <= last; ++id)
        st.owner[id] = sender->node();
      ctx->event("node_joined", json::object{{"first", first}, {"last", last},
                                             {"node", caf::to_string(sender->node())}});
      ctx->log->info("a join node hosts clients {}-{} ({})", first, last,
                     caf::to_string(sender->node()));
      auto& sc = sc_of(self);
      return caf::result<std::string, std::string, std::uint64_t>(sc.source, sc.path, sc.seed);
    },
    [=](tick_atom) {
      check_silence(self, ctx);
      self->delayed_send(self, heartbeat_period(self), tick_atom::value);
    },
    [=](retry_atom) { // real clock: look for an online client again
      auto& st = self->state;
      st.cfg.clock->schedule(now(self), tag(retry, 0));
      pump(self, ctx);
    },
    [=](timeout_atom, std::uint32_t round) { // real clock: a round deadline
      auto& st = self->state;
      if (round == st.round && st.round_open) {
        st.cfg.clock->schedule(now(self), tag(deadline, round));
        pump(self, ctx);
      }
    },
  };
}

/// Builds (and distils) the model clients receive, on the worker. Joins wait
/// in the mailbox meanwhile (they are skipped until then).
caf::behavior preparing(server_ptr self, const context_ptr& ctx) {
  auto& st = self->state;
  auto out = std::make_shared<result<distill_report_summary>>(error{errc::unknown, "not run"});
  auto session = st.cfg.session;
  ctx->log->info("preparing the {} method{}", sc_of(self).method.name,
                 st.cfg.plan.ship_auxiliary ? ": building and distilling the auxiliary model" : "");
  auto opt_state = st.server_step_state; // a resumed run's server step optimizer
  self->request(st.cfg.worker, caf::infinite, run_atom::value, compute_job{[=] {
                  *out = session->prepare();
                  if (out->ok() && !opt_state.empty())
                    if (auto err = session->restore_server_step(opt_state))
                      *out = error{err->code, "resuming the server step: " + err->text};
                }})
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
                                         {"wall_seconds", d.seconds}};
          ctx->event("distill", st.distillation);
          ctx->log->info("distilled the auxiliary model: {} steps, loss {:.4f} -> {:.4f} "
                         "(held-out {:.4f}), {:.0f} s",
                         d.steps, d.loss_first, d.loss_last, d.heldout, d.seconds);
        }
        st.task_flops = st.cfg.session->client_task_flops();
        auto& model = st.cfg.session->client_model();
        if (!model.empty())
          st.model_chunks = split_model(st.cfg.session->client_model_id(), model,
                                        sc_of(self).method.chunk_bytes);
        ctx->event("prepared", json::object{{"wall_seconds", seconds},
                                            {"client_model", st.cfg.session->client_model_id()},
                                            {"client_model_bytes", model.size()},
                                            {"chunks", st.model_chunks.size()},
                                            {"task_gflops",
                                             st.task_flops / 1e9}});
        st.prepared = true;
        self->become(running(self, ctx));
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
  st.prompts_ptr = std::make_shared<const prompt_set>(st.prompts);
  auto& sc = *st.cfg.sc;
  // Every client's profile, drawn once from the scenario's seed.
  auto n = st.cfg.expected_clients;
  auto speeds = sc.clients.speed_dist.sample(n, mix_seed(sc.seed, 21));
  auto latency = sc.clients.latency_dist.sample(n, mix_seed(sc.seed, 22));
  auto mbps = sc.clients.bandwidth_dist.sample(n, mix_seed(sc.seed, 23));
  for (std::uint32_t i = 0; i < n; ++i)
    st.profiles.push_back(client_profile{speeds[i], latency[i], mbps[i] * 1e6 / 8});
  if (st.cfg.resume)
    restore(self, *st.cfg.resume);
  else if (st.cfg.resuming) // killed before its first checkpoint: version 0 again
    account_for_crash(st, 0, 0);
  auto aopts = aggregator_opts(self);
  aopts.replay = std::move(st.cfg.replay);
  st.cfg.replay.clear();
  st.aggregator = self->spawn<caf::linked>(aggregator, ctx, st.cfg.session->layout(),
                                           std::move(aopts));
  st.evaluator = self->spawn<caf::linked>(evaluator, ctx, st.cfg.worker, st.cfg.session);
  self->set_default_handler(caf::skip);
  // Linked helpers: the aggregator is restarted when it dies; anything else
  // that fails takes the server with it (and the server them).
  self->set_exit_handler([=](caf::exit_msg& em) {
    auto& st = self->state;
    if (em.source == st.aggregator.address() && !st.stopping && em.reason) {
      restart_aggregator(self, ctx, em.source);
      return;
    }
    if (em.reason)
      self->quit(em.reason);
  });
  self->set_down_handler([=](caf::down_msg& dm) {
    auto& st = self->state;
    if (st.stopping)
      return; // clients leave after Shutdown: not news
    for (auto it = st.clients.begin(); it != st.clients.end(); ++it) {
      if (it->second.handle.address() != dm.source)
        continue;
      auto id = it->first;
      ctx->event("client_down", json::object{{"client", id}});
      // Its open tasks fail when the clock reaches them.
      for (auto& [task, t] : st.tasks)
        if (t.client == id && !t.arrived)
          give_up(self, t, "client actor down");
      st.clients.erase(it);
      break;
    }
    flush_sends(self, ctx);
    pump(self, ctx);
  });
  return preparing(self, ctx);
}

} // namespace fedsp
