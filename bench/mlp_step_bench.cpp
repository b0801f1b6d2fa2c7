// The bare training step of the mlp workload, for bench/overhead.sh: what a
// framework spends on one SGD step of the same MLP with nothing around it,
// so the runtime's cost per update can be read as "step + overhead".
//
//   fedsp_mlp_step IN HIDDEN CLASSES SAMPLES [REPS]
//
// Prints two medians over REPS steps (default 200), one thread:
//   bare   torch::nn::Linear x 2, autograd, torch::optim::SGD, on samples
//          drawn beforehand; weights stay in the modules (no copy in or out).
//          This is the step a torch-based framework runs per client.
//   task   fedsp's own mlp task (models/simple_model.hpp): the parameters
//          copied in and out, the samples drawn from the task's seed, one step.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "models/federated.hpp"
#include "models/simple_model.hpp"

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

template <class F> double time_ms(F&& f) {
  auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: fedsp_mlp_step IN HIDDEN CLASSES SAMPLES [REPS]\n");
    return 2;
  }
  auto arg = [&](int i) { return std::strtol(argv[i], nullptr, 10); };
  long in = arg(1), hidden = arg(2), classes = arg(3), samples = arg(4);
  long reps = argc > 5 ? arg(5) : 200;
  if (in <= 0 || hidden <= 0 || classes < 2 || samples <= 0 || reps <= 0) {
    std::fprintf(stderr, "fedsp_mlp_step: every size must be a positive integer\n");
    return 2;
  }
  fedsp::set_compute_threads(1);

  torch::manual_seed(1);
  torch::nn::Sequential net(torch::nn::Linear(in, hidden), torch::nn::ReLU(),
                            torch::nn::Linear(hidden, classes));
  torch::optim::SGD opt(net->parameters(), torch::optim::SGDOptions(0.1));
  auto x = torch::randn({samples, in});
  auto y = torch::randint(0, classes, {samples});
  std::vector<double> bare;
  for (long r = 0; r < reps + 5; ++r) {
    double ms = time_ms([&] {
      opt.zero_grad();
      auto loss = torch::nn::functional::cross_entropy(net->forward(x), y);
      loss.backward();
      opt.step();
    });
    if (r >= 5) // warm-up
      bare.push_back(ms);
  }

  std::string yaml = "model:\n  kind: mlp\n  mlp_input: " + std::to_string(in)
                     + "\n  mlp_hidden: " + std::to_string(hidden) + "\n  mlp_classes: "
                     + std::to_string(classes) + "\n  mlp_samples: " + std::to_string(samples)
                     + "\nmethod:\n  name: fedprompt\ntraining:\n  prompt_steps: 1\n"
                       "  prompt_lr: 0.1\n";
  auto sc = fedsp::parse_scenario(yaml, "mlp_step.yaml");
  if (!sc) {
    std::fprintf(stderr, "fedsp_mlp_step: %s\n", sc.err().message().c_str());
    return 2;
  }
  auto model = fedsp::simple_model::create(sc.value(), false).value();
  auto params = model->initial();
  std::vector<double> task;
  for (long r = 0; r < reps + 5; ++r) {
    double ms = time_ms([&] { params = model->train(params, static_cast<std::uint64_t>(r))
                                          .value().params; });
    if (r >= 5)
      task.push_back(ms);
  }
  std::printf("mlp %ld -> %ld -> %ld, %ld samples, %lld parameters, 1 thread, median of %ld\n",
              in, hidden, classes, samples, static_cast<long long>(model->parameters()), reps);
  std::printf("bare torch step (nn::Linear, autograd, optim::SGD)  %.3f ms\n", median(bare));
  std::printf("fedsp mlp task (copy in, draw samples, step, out)   %.3f ms\n", median(task));
  return 0;
}
