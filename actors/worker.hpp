// worker: owns a compute device and runs jobs on it, one at a time.
//
// Spawned `detached` (its own thread) for GPT models: torch calls block.
// (The null and mlp kinds' short jobs run on CAF's scheduler.) A job is a closure
// that the requester built around the state it owns (a client's session, the
// server's); the worker runs it with its device's name ("cpu", "cuda:1")
// and answers with its wall-clock seconds. A client's job places the
// client's session on that device before it trains (docs/architecture.md,
// "Devices"). Jobs are served in arrival order.
#pragma once

#include <string>
#include <vector>

#include "actors/wire.hpp"

namespace fedsp {

struct device_plan;

using worker_actor = caf::typed_actor<caf::replies_to<run_atom, compute_job>::with<double>>;

struct worker_state {
  static inline const char* name = "worker";
};

worker_actor::behavior_type worker(worker_actor::stateful_pointer<worker_state> self,
                                   std::string device);

/// `count` workers, worker w on plan.device_of_worker(w); `detached` gives
/// each its own thread (GPT models: jobs block for seconds; the null and mlp
/// kinds' jobs take microseconds and share CAF's scheduler threads).
std::vector<worker_actor> spawn_workers(caf::actor_system& sys, const device_plan& plan,
                                        std::uint32_t count, bool detached);

} // namespace fedsp
