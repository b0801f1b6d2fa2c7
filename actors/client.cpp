#include "actors/client.hpp"

namespace fedsp {


client_actor::behavior_type
client(client_actor::stateful_pointer<client_state> self, context_ptr ctx,
       client_config cfg) {
  auto me = client_name(cfg.id);
  // A task that cannot be trained is answered with a Reject to the server,
  // which then stops waiting for it; the reason is logged and is an event.
  auto refuse = [=](const error& err,
                    std::uint64_t task) {
    ctx->event("reject", json::object{{"by", me},
                                      {"task", task},
                                      {"reason", to_string(err.code)},
                                      {"text", err.text}});
    ctx->log->warn("{} refused task {}: {}", me, task, err.message());
    if (task != 0)
      caf::anon_send(cfg.server,
                     ctx->seal(envelope{me, reject_msg{err.code, err.text, task}}));
  };
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
      },
      [=](caf::error& err) {
        ctx->log->error("{}: join failed: {}", me, self->system().render(err));
        self->quit(err);
      });
  return {
    [=](const wire_buffer& buf) {
      auto env = decode(buf);
      if (!env) {
        refuse(env.err(), 0);
        return;
      }
      auto& body = env.value().body;
      if (std::holds_alternative<shutdown_msg>(body)) {
        self->quit();
        return;
      }
      auto* task = std::get_if<task_msg>(&body);
      if (task == nullptr) {
        refuse(error{errc::unsupported,
                               std::string("client takes task or shutdown, got ")
                                 + kind_name(body)},
               0);
        return;
      }
      if (task->client_id != cfg.id) {
        refuse(error{errc::wrong_client,
                               "task " + std::to_string(task->task_id)
                                 + " is for " + client_name(task->client_id)},
               task->task_id);
        return;
      }
      if (!self->state.welcomed) {
        refuse(error{errc::unknown_sender, "task before welcome"},
               task->task_id);
        return;
      }
      if (auto err = check_layout(self->state.layout, task->prompts)) {
        refuse(*err, task->task_id);
        return;
      }
      train_job job{task->prompts, cfg.data,
                    train_params{task->local_steps, task->learning_rate,
                                 task->batch_size, task->seed}};
      auto t = *task;
      self->request(cfg.worker, caf::infinite, train_atom::value, std::move(job))
        .then(
          [=](const train_outcome& out) {
            if (!out.ok) {
              refuse(out.err, t.task_id);
              return;
            }
            auto& r = out.report;
            update_msg up{t.task_id, cfg.id, t.base_version, r.prompts,
                          r.num_samples,
                          {{"loss_before", r.loss_before},
                           {"loss_after", r.loss_after},
                           {"train_loss_first", r.train_loss_first},
                           {"train_loss_last", r.train_loss_last},
                           {"train_seconds", out.seconds}}};
            self->request(cfg.aggregator, caf::infinite,
                          ctx->seal(envelope{me, std::move(up)}))
              .then([=](const wire_buffer& reply) {
                auto ack = decode(reply);
                if (ack && std::holds_alternative<ack_msg>(ack.value().body)) {
                  ++self->state.tasks_done;
                  return;
                }
                ctx->log->warn("{}: update for task {} not acknowledged: {}", me,
                               t.task_id,
                               ack ? describe(ack.value()) : ack.err().message());
              });
          },
          [=](caf::error& err) {
            refuse(error{errc::unknown,
                         "worker failed: " + self->system().render(err)},
                   t.task_id);
          });
    },
  };
}

} // namespace fedsp
