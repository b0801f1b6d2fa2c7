#include "actors/worker.hpp"

#include <chrono>

#include "models/device.hpp"

namespace fedsp {

worker_actor::behavior_type worker(worker_actor::stateful_pointer<worker_state>,
                                   std::string device) {
  return {
    [device](run_atom, const compute_job& job) {
      auto start = std::chrono::steady_clock::now();
      job.run(device);
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    },
  };
}

std::vector<worker_actor> spawn_workers(caf::actor_system& sys, const device_plan& plan,
                                        std::uint32_t count, bool detached) {
  std::vector<worker_actor> workers;
  for (std::uint32_t w = 0; w < count; ++w)
    workers.push_back(detached ? sys.spawn<caf::detached>(worker, plan.device_of_worker(w))
                               : sys.spawn(worker, plan.device_of_worker(w)));
  return workers;
}

} // namespace fedsp
