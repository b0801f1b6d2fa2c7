#include "actors/client.hpp"

#include "models/device.hpp"

namespace fedsp {

namespace {

using client_ptr = client_actor::stateful_pointer<client_state>;

/// Runs `job` on worker `at` of `workers`; if that worker dies, on the next
/// one. `done` gets the wall seconds, `failed` the last error.
void run_on(client_ptr self, const context_ptr& ctx, const std::string& me,
            std::shared_ptr<const std::vector<worker_actor>> workers, std::size_t at,
            compute_job job, std::function<void(double)> done,
            std::function<void(caf::error&)> failed) {
  auto wk = (*workers)[at];
  self->request(wk, caf::infinite, run_atom::value, job)
    .then([=](double seconds) { done(seconds); },
          [=](caf::error& err) {
            if (at + 1 < workers->size()) {
              ctx->log->warn("{}: worker failed ({}); trying another", me,
                             self->system().render(err));
              run_on(self, ctx, me, workers, at + 1, job, done, failed);
              return;
            }
            auto e = err;
            failed(e);
          });
}

} // namespace

client_actor::behavior_type
client(client_actor::stateful_pointer<client_state> self, context_ptr ctx, client_config cfg) {
  auto me = client_name(cfg.id);
  // A task that cannot be trained is answered with a Reject to the server,
  // which then stops waiting for it; the reason is logged and is an event.
  // Heartbeats and Rejects go with the client as their sender (not
  // anonymously): across machines the server accepts a client's messages
  // only from the node it is bound to, which it reads off the sender. The
  // server's answer (an empty buffer, an Ack) says nothing the client needs.
  auto tell_server = [=](wire_buffer buf) {
    self->request(cfg.server, caf::infinite, std::move(buf))
      .then([](const wire_buffer&) {}, [](caf::error&) {});
  };
  auto refuse = [=](const error& err, std::uint64_t task) {
    if (!ctx->virtual_time) // on the virtual clock the server logs it in order
      ctx->event("reject", json::object{{"by", me},
                                      {"task", task},
                                      {"reason", to_string(err.code)},
                                      {"text", err.text}});
    ctx->log->warn("{} refused task {}: {}", me, task, err.message());
    if (task != 0) {
      self->state.held.erase(task);
      tell_server(ctx->seal(envelope{me, reject_msg{err.code, err.text, task}}));
    }
  };

  auto workers = std::make_shared<std::vector<worker_actor>>();
  workers->push_back(cfg.worker);
  for (auto& w : cfg.spares)
    workers->push_back(w);
  auto run_job = [=](compute_job job, std::function<void(double)> done,
                     std::function<void(caf::error&)> failed) {
    run_on(self, ctx, me, workers, 0, std::move(job), std::move(done), std::move(failed));
  };

  // Trains one task on the worker and submits the prompts.
  // Only the ids are captured: the prompts are copied once, into the job.
  auto train = [=](task_msg& t) {
    auto out = std::make_shared<result<client_round_report>>(error{errc::unknown, "not run"});
    auto session = self->state.session;
    auto prompts = std::make_shared<prompt_set>(std::move(t.prompts));
    auto seed = t.seed;
    auto task_id = t.task_id;
    auto base_version = t.base_version;
    // (the job runs once: the prompts move into the trainer, whose output
    // the update references without a copy)
    auto pager = cfg.pager;
    auto id = cfg.id;
    auto transfer = std::make_shared<double>(0.0);
    auto device = std::make_shared<std::string>();
    compute_job job{[=](const std::string& dev) {
      // Onto this worker's device: back from host memory if it was paged
      // out, across devices after a failover (else both cost nothing).
      // (acquire first: it waits for a prefetch of this session that is
      // still copying, which place must not race; nor may resident_bytes,
      // so the size is not read here: the pager has known the session since
      // it was built, and release gives its size after the task)
      *device = dev;
      if (pager)
        *transfer = pager->acquire(id, 0, {});
      *transfer += session->place(dev);
      *out = session->round(std::move(*prompts), seed);
      if (pager) // its size now: the task grew it (gradients, optimizer moments)
        pager->release(id, session->resident_bytes());
    }};
    // The worker may be busy with other clients' tasks: the pager brings
    // this session back meanwhile, if it fits (runtime/pager.hpp).
    if (pager)
      pager->prefetch(id);
    run_job(
      std::move(job),
        [=](double seconds) {
          self->state.held.erase(task_id);
          if (!out->ok()) {
            refuse(out->err(), task_id);
            return;
          }
          auto& r = out->value();
          update_msg up{task_id, cfg.id, base_version, std::move(r.prompts), r.num_samples,
                        {{"loss_before", r.loss_before},
                         {"loss_after", r.loss_after},
                         {"model_loss_first", r.model_loss_first},
                         {"model_loss_last", r.model_loss_last},
                         {"prompt_loss_first", r.prompt_loss_first},
                         {"prompt_loss_last", r.prompt_loss_last},
                         {"train_seconds", seconds},
                         {"transfer_seconds", *transfer},
                         {"device_index", device_index(*device)},
                         {"flops", r.flops}}};
          self->request(cfg.server, caf::infinite, ctx->seal(envelope{me, std::move(up)}))
            .then([=](const wire_buffer& reply) {
              auto ack = decode(reply);
              if (ack && std::holds_alternative<ack_msg>(ack.value().body))
                return;
              ctx->log->warn("{}: update for task {} not acknowledged: {}", me, task_id,
                             ack ? describe(ack.value()) : ack.err().message());
            });
        },
        [=](caf::error& err) {
          if (pager)
            pager->cancel_prefetch(id);
          refuse(error{errc::unknown, "worker failed: " + self->system().render(err)}, task_id);
        });
  };

  // Builds the session from the received model on the worker, then runs
  // whatever tasks arrived meanwhile.
  auto build_session = [=] {
    auto& st = self->state;
    st.building = true;
    auto out = std::make_shared<result<std::shared_ptr<client_session>>>(
      error{errc::unknown, "not run"});
    // The file moves into the job: once the session is built from it, no
    // copy stays behind (446 MB a client at GPT-2 XL's auxiliary size).
    auto bytes = std::make_shared<std::string>(st.model.complete() ? st.model.take_bytes() : "");
    auto data = cfg.data;
    auto sc = cfg.sc;
    auto pager = cfg.pager;
    auto id = cfg.id;
    compute_job job{[=](const std::string& device) {
      *out = client_session::create(*bytes, *sc, *data, device);
      if (pager && out->ok()) { // built on the device: resident until evicted
        std::weak_ptr<client_session> weak = out->value();
        auto s = out->value();
        pager->acquire(id, s->resident_bytes(),
                       {[weak] { auto s = weak.lock(); return s ? s->offload() : 0.0; },
                        [weak] { auto s = weak.lock(); return s ? s->restore() : 0.0; }});
        pager->release(id);
      }
    }};
    run_job(
      std::move(job),
        [=](double) {
          auto& st = self->state;
          st.building = false;
          if (!out->ok()) {
            st.broken = error{out->err().code, "received model unusable: " + out->err().text};
            ctx->log->error("{}: {}", me, st.broken->text);
          } else {
            st.session = out->value();
          }
          auto waiting = std::move(st.waiting);
          st.waiting.clear();
          for (auto& t : waiting)
            if (st.session)
              train(t);
            else
              refuse(*st.broken, t.task_id);
        },
        [=](caf::error& err) {
          auto& st = self->state;
          st.building = false;
          st.broken = error{errc::unknown, "worker failed: " + self->system().render(err)};
          auto waiting = std::move(st.waiting);
          st.waiting.clear();
          for (auto& t : waiting)
            refuse(*st.broken, t.task_id);
        });
  };

  // Heartbeats while tasks are held; a model transfer that stalls breaks
  // the client (docs/faults.md "Detection").
  // A client ticks only while it has something to watch: tasks it holds, or
  // a model still arriving; an idle client is on no timer. Its ticks come
  // from the process's pulse (spawn_pulse), not from timers of its own.
  auto silence = std::chrono::duration<double>(cfg.sc->federation.silence_s);
  auto beat = client_beat(*cfg.sc);
  auto model_arriving = [=] {
    auto& st = self->state;
    return st.welcomed && !st.session && !st.building && !st.broken && !st.model.complete();
  };
  auto watching = [=] { return !self->state.held.empty() || model_arriving(); };
  auto arm = [=] {
    if (self->state.ticking)
      return;
    self->state.ticking = true;
    if (cfg.board)
      cfg.board->wants[cfg.slot].store(true, std::memory_order_relaxed);
    else
      self->delayed_send(self, beat, tick_atom::value);
  };
  self->state.model_progress = std::chrono::steady_clock::now();

  // Join is a request: the server learns this actor's handle from it and
  // answers with Welcome (the prompt layout every task must match).
  self->request(cfg.server, caf::infinite,
                ctx->seal(envelope{me, join_msg{cfg.id, cfg.data->size()}}))
    .then(
      [=](const wire_buffer& reply) {
        auto env = decode(reply);
        auto* w = env ? std::get_if<welcome_msg>(&env.value().body) : nullptr;
        if (w == nullptr || w->client_id != cfg.id) {
          ctx->log->error("{}: join was not welcomed: {}", me,
                          env ? describe(env.value()) : env.err().message());
          self->quit();
          return;
        }
        self->state.layout = w->prompt_shapes;
        self->state.welcomed = true;
        self->state.model_progress = std::chrono::steady_clock::now();
        if (w->model_chunks == 0) // nothing to receive (model.kind null / mlp)
          build_session();
        else
          arm(); // the model's chunks are watched for a stall
      },
      [=](caf::error& err) {
        ctx->log->error("{}: join failed: {}", me, self->system().render(err));
        self->quit(err);
      });
  return {
    [=](tick_atom) {
      auto& st = self->state;
      st.ticking = false;
      if (watching())
        arm();
      if (model_arriving() && std::chrono::steady_clock::now() - st.model_progress > silence) {
        st.broken = error{errc::io, "model transfer stalled: "
                                      + std::to_string(st.model.chunks_received())
                                      + " chunk(s) arrived, then nothing for "
                                      + std::to_string(cfg.sc->federation.silence_s) + " s"};
        ctx->log->error("{}: {}", me, st.broken->text);
        auto waiting = std::move(st.waiting);
        st.waiting.clear();
        for (auto& t : waiting)
          refuse(*st.broken, t.task_id);
      }
      if (!st.held.empty())
        tell_server(ctx->seal(envelope{
          me, heartbeat_msg{ctx->now(), std::vector<std::uint64_t>(st.held.begin(),
                                                                   st.held.end())}}));
    },
    [=](const wire_buffer& buf) {
      auto env = decode(buf);
      if (!env) {
        refuse(env.err(), 0);
        return;
      }
      auto& st = self->state;
      auto& body = env.value().body;
      if (std::holds_alternative<shutdown_msg>(body)) {
        self->quit();
        return;
      }
      if (auto* chunk = std::get_if<model_chunk_msg>(&body)) {
        if (st.broken || st.session || st.building)
          return; // a model is already here (or lost): ignore stray chunks
        if (!st.chunks_seen.insert(chunk->index).second)
          return; // a duplicate of a chunk already here
        if (auto err = st.model.add(*chunk)) {
          st.broken = err;
          refuse(*err, 0);
          auto waiting = std::move(st.waiting);
          st.waiting.clear();
          for (auto& t : waiting)
            refuse(*err, t.task_id);
          return;
        }
        st.model_progress = std::chrono::steady_clock::now();
        if (st.model.complete()) {
          if (!ctx->virtual_time)
            ctx->event("model_received", json::object{{"client", cfg.id},
                                                    {"model", chunk->model_id},
                                                    {"bytes", chunk->total_bytes},
                                                    {"chunks", chunk->count}});
          build_session();
        }
        return;
      }
      auto* task = std::get_if<task_msg>(&body);
      if (task == nullptr) {
        refuse(error{errc::unsupported,
                     std::string("client takes model_chunk, task or shutdown, got ")
                       + kind_name(body)},
               0);
        return;
      }
      if (task->client_id != cfg.id) {
        refuse(error{errc::wrong_client, "task " + std::to_string(task->task_id) + " is for "
                                           + client_name(task->client_id)},
               0);
        return;
      }
      if (!st.welcomed) {
        refuse(error{errc::unknown_sender, "task before welcome"}, task->task_id);
        return;
      }
      if (!st.held.insert(task->task_id).second)
        return; // a duplicate of a task already here
      arm(); // heartbeats while it is held
      if (auto err = check_layout(st.layout, task->prompts)) {
        refuse(*err, task->task_id);
        return;
      }
      if (st.broken) {
        refuse(*st.broken, task->task_id);
        return;
      }
      if (!st.session) {
        st.waiting.push_back(*task); // the model is still arriving or building
        return;
      }
      train(*task);
    },
  };
}

std::chrono::microseconds client_beat(const scenario& sc) {
  auto silence = std::chrono::duration<double>(sc.federation.silence_s);
  return std::chrono::duration_cast<std::chrono::microseconds>(silence / 4);
}

caf::actor spawn_pulse(caf::actor_system& sys, std::chrono::microseconds beat,
                       std::shared_ptr<pulse_board> board, std::vector<caf::actor> clients) {
  return sys.spawn([=](caf::event_based_actor* self) -> caf::behavior {
    self->delayed_send(self, beat, tick_atom::value);
    return {
      [=](tick_atom) {
        self->delayed_send(self, beat, tick_atom::value);
        for (std::size_t i = 0; i < clients.size() && i < board->wants.size(); ++i)
          if (clients[i] && board->wants[i].exchange(false, std::memory_order_relaxed))
            self->send(clients[i], tick_atom::value);
      },
    };
  });
}

} // namespace fedsp
