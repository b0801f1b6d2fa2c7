#include "actors/worker.hpp"

#include <chrono>

namespace fedsp {

worker_actor::behavior_type
worker(worker_actor::stateful_pointer<worker_state> self, model_params params,
       std::uint64_t seed) {
  self->state.model = std::make_unique<prompt_model>(params, seed);
  return {
    [=](train_atom, const train_job& job) {
      train_outcome out;
      auto start = std::chrono::steady_clock::now();
      auto res = self->state.model->train(job.prompts, *job.data, job.params);
      out.seconds = std::chrono::duration<double>(
                      std::chrono::steady_clock::now() - start)
                      .count();
      if (res) {
        out.ok = true;
        out.report = std::move(res).value();
      } else {
        out.err = res.err();
      }
      return out;
    },
    [=](eval_atom, const eval_job& job) {
      eval_outcome out;
      auto res = self->state.model->evaluate(job.prompts, *job.data);
      if (res) {
        out.ok = true;
        out.report = res.value();
      } else {
        out.err = res.err();
      }
      return out;
    },
  };
}

} // namespace fedsp
