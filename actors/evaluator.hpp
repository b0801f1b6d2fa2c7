// evaluator: scores published prompts on the test split.
//
// Contract: an EvalRequest envelope in, an EvalReport envelope out (or a
// Reject when the request is malformed or its prompts do not fit the model).
// It scores the global model and, when the method has one, the auxiliary
// model, both running the request's prompts (metrics acc, acc_norm, loss,
// aux_acc, aux_acc_norm). Scoring runs on a worker; each report is also an
// `eval` event.
#pragma once

#include "actors/worker.hpp"

namespace fedsp {

using evaluator_actor = caf::typed_actor<caf::replies_to<wire_buffer>::with<wire_buffer>>;

struct evaluator_state {
  static inline const char* name = "evaluator";
};

evaluator_actor::behavior_type
evaluator(evaluator_actor::stateful_pointer<evaluator_state> self, context_ptr ctx,
          worker_actor worker, std::shared_ptr<server_session> session);

} // namespace fedsp
