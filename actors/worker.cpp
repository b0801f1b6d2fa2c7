#include "actors/worker.hpp"

#include <chrono>

namespace fedsp {

worker_actor::behavior_type worker(worker_actor::stateful_pointer<worker_state>) {
  return {
    [](run_atom, const compute_job& job) {
      auto start = std::chrono::steady_clock::now();
      job.run();
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    },
  };
}

} // namespace fedsp
