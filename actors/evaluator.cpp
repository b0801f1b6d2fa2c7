#include "actors/evaluator.hpp"

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
evaluator(evaluator_actor::stateful_pointer<evaluator_state> self,
          context_ptr ctx, worker_actor worker, example_list test_data) {
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
      auto version = req->version;
      auto split = req->split;
      self->request(worker, caf::infinite, eval_atom::value,
                    eval_job{std::move(req->prompts), test_data})
        .then(
          [=](const eval_outcome& out) mutable {
            if (!out.ok) {
              rp.deliver(reject(*ctx, out.err));
              return;
            }
            auto& r = out.report;
            ctx->event("eval", json::object{{"version", version},
                                            {"split", split},
                                            {"acc", r.acc},
                                            {"acc_norm", r.acc_norm},
                                            {"loss", r.loss},
                                            {"n", r.num_examples}});
            eval_report_msg rep{version, split,
                                {{"acc", r.acc}, {"acc_norm", r.acc_norm},
                                 {"loss", r.loss}},
                                r.num_examples};
            rp.deliver(ctx->seal(envelope{self_name, std::move(rep)}));
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
