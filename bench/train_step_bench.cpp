// One training step of fedsp's GPT-2 (forward, backward, AdamW over all
// parameters), timed; the PyTorch-eager counterpart is
// bench/train_step_reference.py, and bench/train_step.sh runs both.
//
//   fedsp_train_bench PRESET global|aux BATCH SEQ STEPS THREADS
// prints one JSON line: median step seconds, tokens/s, peak RSS.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <sys/resource.h>

#include "models/auxiliary.hpp"
#include "models/federated.hpp"
#include "models/trainer.hpp"

using namespace fedsp::models;

int main(int argc, char** argv) {
  if (argc != 7) {
    std::fprintf(stderr, "usage: %s PRESET global|aux BATCH SEQ STEPS THREADS\n", argv[0]);
    return 2;
  }
  std::string preset = argv[1], which = argv[2];
  long B = std::atol(argv[3]), T = std::atol(argv[4]), steps = std::atol(argv[5]);
  fedsp::set_compute_threads(std::atoi(argv[6])); // as fedsp runs: torch threads, OpenBLAS 1
  auto cfg = model_preset(preset);
  if (!cfg) {
    std::fprintf(stderr, "%s\n", cfg.err().text.c_str());
    return 2;
  }
  gpt global(cfg.value(), 1);
  gpt model = global;
  if (which == "aux") {
    model = build_auxiliary(global, aux_params{}).value().model;
    global = gpt(nullptr); // only the auxiliary model stays in memory
  }
  model->set_trainable(true);
  model->train();
  torch::optim::AdamW opt(model->parameters(), torch::optim::AdamWOptions(1e-4));
  auto x = torch::randint(0, cfg.value().vocab_size, {B, T}, torch::kLong); // (B, T)
  auto y = torch::randint(0, cfg.value().vocab_size, {B, T}, torch::kLong); // (B, T)
  std::vector<double> times;
  for (long s = 0; s < steps + 1; ++s) { // the first step warms up, untimed
    auto start = std::chrono::steady_clock::now();
    auto logits = model->forward(x, torch::Tensor()); // (B, T, V)
    auto loss = torch::nn::functional::cross_entropy(logits.view({B * T, -1}), y.view({-1}));
    loss.backward();
    opt.step();
    opt.zero_grad();
    auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (s > 0)
      times.push_back(secs);
  }
  std::sort(times.begin(), times.end());
  double median = times[times.size() / 2];
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::printf("{\"impl\": \"fedsp\", \"preset\": \"%s\", \"model\": \"%s\", \"params\": %lld, "
              "\"batch\": %ld, \"seq\": %ld, \"median_s\": %.4f, \"tokens_per_s\": %.1f, "
              "\"peak_rss_mb\": %.1f}\n",
              preset.c_str(), which.c_str(), static_cast<long long>(model->num_parameters()), B, T,
              median, static_cast<double>(B * T) / median, ru.ru_maxrss / 1024.0);
  return 0;
}
