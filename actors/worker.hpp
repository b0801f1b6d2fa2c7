// worker: owns a device and a model, runs training and scoring jobs.
//
// Spawned `detached` (its own thread): torch calls block. Jobs are served in
// arrival order. The model is the frozen base; only prompts change per job.
#pragma once

#include "actors/wire.hpp"

namespace fedsp {

using worker_actor = caf::typed_actor<
  caf::replies_to<train_atom, train_job>::with<train_outcome>,
  caf::replies_to<eval_atom, eval_job>::with<eval_outcome>>;

struct worker_state {
  std::unique_ptr<prompt_model> model;
  static inline const char* name = "worker";
};

/// Builds the base model (from `params` and `seed`) on the worker's thread.
worker_actor::behavior_type
worker(worker_actor::stateful_pointer<worker_state> self, model_params params,
       std::uint64_t seed);

} // namespace fedsp
