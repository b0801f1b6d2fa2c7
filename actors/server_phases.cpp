// The server's intake (Join, Update, Reject, Heartbeat, hellos) and its
// phases: preparing, running, finished.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>

#include "actors/server_state.hpp"

namespace fedsp::server_room {

using hello_result = caf::result<std::string, std::string, std::uint64_t>;

caf::result<wire_buffer> on_update(server_ptr self, const context_ptr& ctx, wire_buffer& buf,
                                   const envelope_head& head);
caf::result<wire_buffer> on_answer(server_ptr self, const context_ptr& ctx,
                                   const std::string& sender, std::uint64_t task_id,
                                   wire_buffer* buf, const std::string& refusal);

/// Seals a message for client `id`, counting its bytes.
wire_buffer to_client(const context_ptr& ctx, std::uint32_t id, message_body body) {
  auto buf = ctx->seal(envelope{self_name, std::move(body)});
  if (ctx->traffic != nullptr)
    ctx->traffic->to_client(id, buf.size_bytes());
  return buf;
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
    return server_room::refuse(self, ctx, err, from);
  };
  // fedsp serve: a client id speaks only from the node it is bound to.
  auto from_its_node = [&](std::uint32_t id) {
    return st.clients.speaks_from(id, self->current_sender(), !st.cfg.join_token.empty());
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
    if (st.running && st.clients.joined(join->client_id))
      return refuse(error{errc::duplicate, client_name(join->client_id) + " already joined"},
                    e.sender);
    auto id = join->client_id;
    auto& c = st.clients.join(id, handle, join->num_samples);
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
  auto refuse = [&](const error& err) {
    return server_room::refuse(self, ctx, err, sender, task_id);
  };
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
    t.held = held_update_token(&st.updates_waiting);
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

// -- start and end --------------------------------------------------------------------

server_actor::behavior_type finished(server_ptr self, const context_ptr& ctx) {
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
  st.done.deliver(summary_of(self, ctx).dump());
  auto over = [] { return caf::make_error(caf::sec::runtime_error, "the run is over"); };
  return {
    [=](const wire_buffer&) -> caf::result<wire_buffer> { // the run is over
      return ctx->seal(envelope{self_name, reject_msg{errc::task_closed, "the run is over", 0}});
    },
    [=](aggregator_atom) -> caf::result<aggregator_actor> { return self->state.aggregator; },
    [=](run_atom) -> caf::result<std::string> { return over(); },
    [=](hello_atom, const std::string&, std::uint32_t, std::uint32_t) -> hello_result {
      return over();
    },
    [=](tick_atom) {},    // no more liveness checks,
    [=](retry_atom) {},   // rounds
    [=](timeout_atom, std::uint32_t) {}, // or deadlines
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

server_actor::behavior_type running(server_ptr self, const context_ptr& ctx) {
  return {
    [=](wire_buffer& buf) -> caf::result<wire_buffer> {
      auto reply = on_wire(self, ctx, buf);
      maybe_start(self, ctx);
      return reply;
    },
    [=](aggregator_atom) -> caf::result<aggregator_actor> { return self->state.aggregator; },
    [=](run_atom) -> caf::result<std::string> {
      auto& st = self->state;
      st.done = self->make_response_promise();
      st.run_requested = true;
      maybe_start(self, ctx);
      return st.done;
    },
    [=](hello_atom, const std::string& token, std::uint32_t first,
        std::uint32_t last) -> hello_result {
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
      if (auto why = st.clients.bind(first, last, sender, st.cfg.expected_clients);
          !why.empty())
        return refuse_node(why);
      ctx->event("node_joined", json::object{{"first", first}, {"last", last},
                                             {"node", caf::to_string(sender->node())}});
      ctx->log->info("a join node hosts clients {}-{} ({})", first, last,
                     caf::to_string(sender->node()));
      auto& sc = sc_of(self);
      return hello_result(sc.source, sc.path, sc.seed);
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
server_actor::behavior_type preparing(server_ptr self, const context_ptr& ctx) {
  auto& st = self->state;
  auto out = std::make_shared<result<distill_report_summary>>(error{errc::unknown, "not run"});
  auto session = st.cfg.session;
  ctx->log->info("preparing the {} method{}", sc_of(self).method.name,
                 st.cfg.plan.ship_auxiliary ? ": building and distilling the auxiliary model" : "");
  auto opt_state = st.server_step_state; // a resumed run's server step optimizer
  self->request(st.cfg.worker, caf::infinite, run_atom::value, compute_job{[=](const std::string&) {
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
        // The devices the run computes on (summary.json has each worker's:
        // the events may not depend on how many workers there are).
        json::array devices;
        for (auto& d : st.cfg.devices)
          devices.emplace_back(d);
        ctx->event("prepared", json::object{{"wall_seconds", seconds},
                                            {"client_model", st.cfg.session->client_model_id()},
                                            {"client_model_bytes", model.size()},
                                            {"chunks", st.model_chunks.size()},
                                            {"task_gflops", st.task_flops / 1e9},
                                            {"devices", json(std::move(devices))}});
        st.prepared = true;
        self->become(running(self, ctx));
        maybe_start(self, ctx);
      },
      [=](caf::error& err) { self->quit(err); });
  // Joins, (run) and hellos wait in the mailbox until the model is ready.
  return {
    [=](wire_buffer&) -> caf::result<wire_buffer> { return caf::skip; },
    [=](aggregator_atom) -> caf::result<aggregator_actor> { return self->state.aggregator; },
    [=](run_atom) -> caf::result<std::string> { return caf::skip; },
    [=](hello_atom, const std::string&, std::uint32_t, std::uint32_t) -> hello_result {
      return caf::skip;
    },
    [=](tick_atom) {}, // (the liveness checks start with the run)
    [=](retry_atom) {},
    [=](timeout_atom, std::uint32_t) {},
  };
}

server_actor::behavior_type server(server_ptr self, context_ptr ctx, server_config cfg) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  st.set_prompts(st.cfg.session->initial_prompts());
  st.version = st.prompts().version;
  st.clients = client_registry(*st.cfg.sc, st.cfg.expected_clients);
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
    if (auto id = st.clients.leave(dm.source)) {
      ctx->event("client_down", json::object{{"client", *id}});
      // Its open tasks fail when the clock reaches them.
      for (auto& [task, t] : st.tasks)
        if (t.client == *id && !t.arrived)
          give_up(self, t, "client actor down");
    }
    flush_sends(self, ctx);
    pump(self, ctx);
  });
  return preparing(self, ctx);
}

} // namespace fedsp::server_room

namespace fedsp {

server_actor spawn_server(caf::actor_system& sys, context_ptr ctx, server_config cfg) {
  return sys.spawn(server_room::server, std::move(ctx), std::move(cfg));
}

} // namespace fedsp
