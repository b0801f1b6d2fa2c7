#include "actors/evaluator.hpp"

#include <cmath>

namespace fedsp {

namespace {

const std::string self_name = "evaluator";

wire_buffer reject(const run_context& ctx, const error& err) {
  ctx.event("reject", json::object{{"by", self_name},
                                   {"reason", to_string(err.code)},
                                   {"text", err.text}});
  ctx.log->warn("evaluator rejected a request: {}", err.message());
  return ctx.seal(envelope{self_name, reject_msg{err.code, err.text, 0}});
}

} // namespace

evaluator_actor::behavior_type
evaluator(evaluator_actor::stateful_pointer<evaluator_state> self, context_ptr ctx,
          worker_actor worker, std::shared_ptr<server_session> session) {
  return {
    [=](const wire_buffer& buf) -> caf::result<wire_buffer> {
      auto env = decode(buf);
      if (!env)
        return reject(*ctx, env.err());
      auto* req = std::get_if<eval_request_msg>(&env.value().body);
      if (req == nullptr)
        return reject(*ctx, error{errc::unsupported,
                                  std::string("evaluator takes eval_request, got ")
                                    + kind_name(env.value().body)});
      auto rp = self->make_response_promise<wire_buffer>();
      auto scores = std::make_shared<result<model_scores>>(error{errc::unknown, "not run"});
      auto prompts = std::make_shared<prompt_set>(std::move(req->prompts));
      auto version = req->version;
      auto split = req->split;
      compute_job job{[=](const std::string&) { *scores = session->evaluate(*prompts); }};
      self->request(worker, caf::infinite, run_atom::value, std::move(job))
        .then(
          [=](double seconds) mutable {
            if (!scores->ok()) {
              rp.deliver(reject(*ctx, scores->err()));
              return;
            }
            auto& r = scores->value();
            json ev = json::object{{"version", version}, {"split", split},
                                   {"acc", r.global_acc}, {"acc_norm", r.global_acc_norm},
                                   {"loss", r.global_loss}, {"n", r.n},
                                   {"wall_seconds", seconds}};
            // Only what was measured travels: a model with no test set
            // (model.kind null) scores NaN, which the report leaves out and
            // the server then calls "not scored".
            metric_list metrics;
            for (auto& [name, v] : metric_list{{"acc", r.global_acc},
                                               {"acc_norm", r.global_acc_norm},
                                               {"loss", r.global_loss}})
              if (std::isfinite(v))
                metrics.emplace_back(name, v);
            if (r.aux_acc >= 0) {
              ev.set("aux_acc", r.aux_acc);
              ev.set("aux_acc_norm", r.aux_acc_norm);
              metrics.emplace_back("aux_acc", r.aux_acc);
              metrics.emplace_back("aux_acc_norm", r.aux_acc_norm);
            }
            ctx->event("eval", ev);
            rp.deliver(ctx->seal(
              envelope{self_name, eval_report_msg{version, split, std::move(metrics), r.n}}));
          },
          [=](caf::error& err) mutable {
            rp.deliver(reject(*ctx, error{errc::unknown,
                                          "worker failed: " + self->system().render(err)}));
          });
      return rp;
    },
  };
}

} // namespace fedsp
