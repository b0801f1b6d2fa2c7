// worker: owns a compute device and runs jobs on it, one at a time.
//
// Spawned `detached` (its own thread) for GPT models: torch calls block.
// (The null and mlp kinds' short jobs run on CAF's scheduler.) A job is a closure
// that the requester built around the state it owns (a client's session, the
// server's); the worker runs it and answers with its wall-clock seconds.
// Jobs are served in arrival order.
#pragma once

#include "actors/wire.hpp"

namespace fedsp {

using worker_actor = caf::typed_actor<caf::replies_to<run_atom, compute_job>::with<double>>;

struct worker_state {
  static inline const char* name = "worker";
};

worker_actor::behavior_type worker(worker_actor::stateful_pointer<worker_state> self);

} // namespace fedsp
