#include "actors/fault_layer.hpp"

#include "runtime/rng.hpp"

namespace fedsp {

namespace {

using link_ptr = caf::stateful_actor<link_state>*;

/// What the plan's decisions key on: the message's kind and id (task id,
/// chunk index; heartbeats by their sequence). Join, Welcome and Shutdown
/// are exempt.
struct facts {
  bool exempt = false;
  std::uint32_t kind = 99;
  std::uint64_t id = 0;
  const char* name = "garbage";
};

facts identify(const wire_buffer& buf, link_state& st) {
  auto head = peek(buf);
  if (head && head.value().is_update)
    return {false, 3, head.value().task_id, "update"};
  auto env = decode(buf);
  if (!env)
    return {};
  auto& b = env.value().body;
  facts f{false, static_cast<std::uint32_t>(b.index()), 0, kind_name(b)};
  if (std::holds_alternative<join_msg>(b) || std::holds_alternative<welcome_msg>(b)
      || std::holds_alternative<shutdown_msg>(b))
    f.exempt = true;
  else if (auto* t = std::get_if<task_msg>(&b))
    f.id = t->task_id;
  else if (auto* r = std::get_if<reject_msg>(&b))
    f.id = r->task_id;
  else if (auto* a = std::get_if<ack_msg>(&b))
    f.id = a->task_id;
  else if (auto* c = std::get_if<model_chunk_msg>(&b))
    f.id = c->index;
  else if (std::holds_alternative<heartbeat_msg>(b))
    f.id = ++st.heartbeats;
  return f;
}

void forward(link_ptr self, const link_config& cfg, wire_buffer buf, bool up,
             caf::response_promise rp) {
  auto& st = self->state;
  if (!up) {
    if (st.client)
      self->send(st.client, std::move(buf));
    return;
  }
  if (!rp.pending()) { // a one-way message (heartbeat, a client's Reject, a
                       // duplicate): the server's answer goes nowhere
    self->request(cfg.server, caf::infinite, std::move(buf))
      .then([](wire_buffer&) {}, [](caf::error&) {});
    return;
  }
  self->request(cfg.server, caf::infinite, std::move(buf))
    .then([=](wire_buffer& reply) mutable { rp.deliver(std::move(reply)); },
          [=](caf::error& err) mutable { rp.deliver(std::move(err)); });
}

void hold(link_ptr self, wire_buffer buf, bool up, caf::response_promise rp, double seconds,
          std::optional<std::uint64_t>* reorder_slot) {
  auto& st = self->state;
  auto h = ++st.next_hold;
  st.holding[h] = link_state::held{std::move(buf), up, std::move(rp)};
  if (reorder_slot != nullptr)
    *reorder_slot = h;
  self->delayed_send(self, std::chrono::microseconds(static_cast<std::int64_t>(seconds * 1e6)),
                     release_atom::value, h);
}

void release(link_ptr self, const link_config& cfg, std::uint64_t h) {
  auto& st = self->state;
  auto it = st.holding.find(h);
  if (it == st.holding.end())
    return;
  auto m = std::move(it->second);
  st.holding.erase(it);
  if (st.reorder_up == h)
    st.reorder_up.reset();
  if (st.reorder_down == h)
    st.reorder_down.reset();
  forward(self, cfg, std::move(m.buf), m.up, std::move(m.reply));
}

/// Flips `n` bytes of `buf`, at places drawn from `key`.
void corrupt(wire_buffer& buf, std::uint32_t n, std::uint64_t key) {
  if (buf.words.empty())
    return;
  buf.flatten(); // (its own copy of any shared segment: others still read them)
  rng r(key);
  auto* bytes = reinterpret_cast<unsigned char*>(buf.words.data());
  for (std::uint32_t i = 0; i < n; ++i)
    bytes[uniform_below(r, buf.size_bytes())] ^= static_cast<unsigned char>(1 + uniform_below(r, 255));
}

void pass(link_ptr self, const context_ptr& ctx, const link_config& cfg, wire_buffer buf, bool up,
          caf::response_promise rp) {
  auto& st = self->state;
  auto id = identify(buf, st);
  if (id.exempt) {
    forward(self, cfg, std::move(buf), up, std::move(rp));
    return;
  }
  double t = ctx->now();
  auto inject = [&](const fault_spec& f, json extra = json::object{}) {
    extra.set("kind", to_string(f.kind));
    extra.set("index", f.index);
    extra.set("client", cfg.client);
    extra.set("direction", up ? "up" : "down");
    extra.set("message", id.name);
    extra.set("id", id.id);
    ctx->event("fault", extra);
  };
  for (auto& f : cfg.plan->faults) {
    if ((f.kind != fault_kind::partition && f.kind != fault_kind::client_dropout)
        || !f.covers(cfg.client) || !f.active_at(t))
      continue;
    if (f.kind == fault_kind::client_dropout && f.probability < 1.0) {
      // Per task: the client is gone for the tasks the draw picks (their
      // Task never reaches it), there for the others.
      if (id.kind == 2 && fault_fires(f, cfg.seed, message_key(cfg.client, true, 99, id.id))) {
        inject(f);
        return;
      }
      continue;
    }
    inject(f);
    return; // nothing passes
  }
  bool duplicate = false, reorder = false;
  double delay = 0;
  auto key = message_key(cfg.client, up, id.kind, id.id);
  for (auto& f : cfg.plan->faults) {
    if (!f.is_message_fault() || !f.covers(cfg.client) || !f.covers_direction(up)
        || !f.active_at(t) || !fault_fires(f, cfg.seed, key))
      continue;
    switch (f.kind) {
      case fault_kind::message_drop:
        inject(f);
        return;
      case fault_kind::message_delay:
        delay = std::max(delay, f.delay_s);
        inject(f, json::object{{"delay_s", f.delay_s}});
        break;
      case fault_kind::message_duplicate:
        duplicate = true;
        inject(f);
        break;
      case fault_kind::message_reorder:
        reorder = true;
        inject(f);
        break;
      case fault_kind::message_corrupt:
        corrupt(buf, f.bytes, mix_seed(cfg.seed, key));
        inject(f, json::object{{"bytes", f.bytes}});
        break;
      default:
        break;
    }
  }
  // Real clock: a straggler burst holds an Update back for (factor - 1)
  // times the time its task took (on the virtual clock the server models it).
  if (!ctx->virtual_time) {
    auto now = std::chrono::steady_clock::now();
    if (!up && id.kind == 2)
      st.task_arrived[id.id] = now;
    if (up && id.kind == 3) {
      auto it = st.task_arrived.find(id.id);
      double factor = cfg.plan->slowdown(cfg.client, t, cfg.seed, id.id);
      if (it != st.task_arrived.end()) {
        if (factor > 1) {
          std::chrono::duration<double> took = now - it->second;
          delay = std::max(delay, (factor - 1) * took.count());
          for (auto& f : cfg.plan->faults)
            if (f.kind == fault_kind::straggler_burst && f.covers(cfg.client) && f.active_at(t))
              inject(f, json::object{{"delay_s", (factor - 1) * took.count()}});
        }
        st.task_arrived.erase(it);
      }
    }
  }
  auto& slot = up ? st.reorder_up : st.reorder_down;
  if (delay > 0 || reorder) {
    if (duplicate)
      forward(self, cfg, buf, up, caf::response_promise{});
    // A reordered message waits for the next one on its way (at most
    // reorder_hold_s, a quarter of silence_s: it is never taken for lost).
    hold(self, std::move(buf), up, std::move(rp), delay > 0 ? delay : cfg.reorder_hold_s,
         reorder && !slot ? &slot : nullptr);
    return;
  }
  auto waiting = slot;
  slot.reset();
  if (duplicate)
    forward(self, cfg, buf, up, caf::response_promise{});
  forward(self, cfg, std::move(buf), up, std::move(rp));
  if (waiting) // it was held for this one to overtake it
    release(self, cfg, *waiting);
}

} // namespace

caf::behavior link(caf::stateful_actor<link_state>* self, context_ptr ctx, link_config cfg) {
  return {
    [=](wire_buffer& buf) -> caf::result<wire_buffer> {
      auto& st = self->state;
      bool up = self->current_sender() != cfg.server.address();
      if (up && !st.client) {
        st.client = caf::actor_cast<caf::actor>(self->current_sender());
        if (st.client)
          self->link_to(st.client); // it dies, the link dies: the server sees it
      }
      auto rp = self->make_response_promise();
      pass(self, ctx, cfg, std::move(buf), up, rp);
      return rp;
    },
    [=](release_atom, std::uint64_t h) { release(self, cfg, h); },
  };
}

caf::behavior run_driver(caf::event_based_actor* self, context_ptr ctx, driver_config cfg) {
  auto fired = std::make_shared<std::set<std::size_t>>(cfg.fired);
  auto fire = [=](std::size_t i) {
    if (i >= cfg.plan->faults.size() || !fired->insert(i).second)
      return;
    auto& f = cfg.plan->faults[i];
    json ev = json::object{{"kind", to_string(f.kind)}, {"index", i}};
    switch (f.kind) {
      case fault_kind::client_crash: {
        json::array ids;
        for (auto c : f.clients)
          if (c < cfg.clients.size() && cfg.clients[c]) {
            self->send_exit(cfg.clients[c], caf::exit_reason::kill);
            ids.emplace_back(static_cast<double>(c));
          }
        ev.set("clients", json(std::move(ids)));
        break;
      }
      case fault_kind::aggregator_crash: // (not `kill`: that would take its links along)
        self->request(cfg.server, caf::infinite, aggregator_atom::value)
          .then(
            [=](const aggregator_actor& agg) {
              self->send_exit(agg, caf::make_error(caf::sec::runtime_error,
                                                   "injected fault: aggregator_crash"));
            },
            [](caf::error&) {});
        break;
      case fault_kind::worker_crash:
        if (f.worker < cfg.workers.size())
          self->send_exit(cfg.workers[f.worker], caf::exit_reason::kill);
        ev.set("worker", f.worker);
        break;
      case fault_kind::server_crash:
        ev.set("restart_after_s", f.restart_after_s);
        ctx->event("fault", ev);
        ctx->log->warn("fault {}: server crash; restarting from disk after {} s", i,
                       f.restart_after_s);
        cfg.outcome->set({run_outcome::kind::server_crash, "", "", i, f.restart_after_s});
        return;
      default:
        return;
    }
    ctx->log->warn("fault {}: {}", i, to_string(f.kind));
    ctx->event("fault", ev);
  };
  auto is_crash = [](const fault_spec& f) { return info(f.kind).crash; };
  // A server that dies without answering ends the run too.
  self->monitor(cfg.server);
  self->set_down_handler([=](caf::down_msg& dm) {
    cfg.outcome->set({run_outcome::kind::failed, "", "the server died: "
                                                   + self->system().render(dm.reason), 0, 0});
    self->quit();
  });
  self->request(cfg.server, caf::infinite, run_atom::value)
    .then(
      [=](std::string& summary) {
        cfg.outcome->set({run_outcome::kind::finished, std::move(summary), "", 0, 0});
        self->quit();
      },
      [=](caf::error& err) {
        cfg.outcome->set({run_outcome::kind::failed, "", self->system().render(err), 0, 0});
        self->quit();
      });
  // Real clock: time triggers are timers.
  if (!cfg.virtual_time)
    for (auto& f : cfg.plan->faults)
      if (is_crash(f) && !f.at_version && !fired->count(f.index))
        self->delayed_send(self,
                           std::chrono::microseconds(static_cast<std::int64_t>(
                             std::max(0.0, f.at_s - ctx->now()) * 1e6)),
                           fire_atom::value, static_cast<std::uint64_t>(f.index));
  return {
    [=](observe_atom, std::uint64_t version, double t, bool published) {
      for (auto& f : cfg.plan->faults) {
        if (!is_crash(f) || fired->count(f.index))
          continue;
        if (f.at_version ? (published && version >= *f.at_version)
                         : (cfg.virtual_time && t >= f.at_s))
          fire(f.index);
      }
    },
    [=](fire_atom, std::uint64_t i) { fire(static_cast<std::size_t>(i)); },
  };
}

} // namespace fedsp
