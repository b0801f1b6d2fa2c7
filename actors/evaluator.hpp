// evaluator: scores published prompts on the test split.
//
// Contract: an EvalRequest envelope in, an EvalReport envelope out (or a
// Reject when the request is malformed or its prompts do not fit the model).
// Scoring runs on a worker; each report is also an `eval` event.
#pragma once

#include "actors/worker.hpp"

namespace fedsp {

using evaluator_actor
  = caf::typed_actor<caf::replies_to<wire_buffer>::with<wire_buffer>>;

struct evaluator_state {
  static inline const char* name = "evaluator";
};

evaluator_actor::behavior_type
evaluator(evaluator_actor::stateful_pointer<evaluator_state> self,
          context_ptr ctx, worker_actor worker, example_list test_data);

} // namespace fedsp
