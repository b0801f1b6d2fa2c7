// One training step of fedsp's GPT-2 (forward, backward, AdamW over all
// parameters), timed; the PyTorch-eager counterpart is
// bench/train_step_reference.py, and bench/train_step.sh runs both.
//
//   fedsp_train_bench PRESET global|aux BATCH SEQ STEPS THREADS [DEVICE [DTYPE]]
// prints one JSON line: median step seconds, tokens/s, peak RSS. DEVICE is
// cpu (the default) or cuda[:N]; DTYPE f32 (the default), bf16 or f16, as
// compute.dtype runs it: autocast over the forward pass and the loss,
// float32 weights and AdamW state, dynamic loss scaling for f16
// (optimizer_stage, models/trainer.hpp). On CUDA each step ends with a
// synchronisation, so the time is the device's.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <sys/resource.h>

#include <torch/cuda.h>

#include "models/auxiliary.hpp"
#include "models/device.hpp"
#include "models/federated.hpp"
#include "models/precision.hpp"
#include "models/trainer.hpp"

using namespace fedsp::models;

int main(int argc, char** argv) {
  if (argc < 7 || argc > 9) {
    std::fprintf(stderr, "usage: %s PRESET global|aux BATCH SEQ STEPS THREADS [DEVICE [DTYPE]]\n",
                 argv[0]);
    return 2;
  }
  std::string device_name = argc > 7 ? argv[7] : "cpu", dtype = argc > 8 ? argv[8] : "f32";
  if (dtype != "f32" && dtype != "bf16" && dtype != "f16") {
    std::fprintf(stderr, "DTYPE must be f32, bf16 or f16, not '%s'\n", dtype.c_str());
    return 2;
  }
  auto plan = fedsp::resolve_devices(device_name);
  if (!plan) {
    std::fprintf(stderr, "%s\n", plan.err().text.c_str());
    return 2;
  }
  if (auto err = fedsp::check_dtype(dtype, plan.value())) {
    std::fprintf(stderr, "%s\n", err->text.c_str());
    return 2;
  }
  torch::Device device(plan.value().devices.front());
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
  model->to(device);
  optimizer_stage opt(model->parameters(), lr_schedule{1e-4, 0, steps + 1}, 0.01, dtype);
  auto x = torch::randint(0, cfg.value().vocab_size, {B, T}, torch::kLong).to(device); // (B, T)
  auto y = torch::randint(0, cfg.value().vocab_size, {B, T}, torch::kLong).to(device); // (B, T)
  bool cuda = device.is_cuda();
  std::vector<double> times;
  for (long s = 0; s < steps + 1; ++s) { // the first step warms up, untimed
    auto start = std::chrono::steady_clock::now();
    torch::Tensor loss;
    {
      autocast_scope autocast(device, dtype);
      auto logits = model->forward(x, torch::Tensor()); // (B, T, V)
      loss = torch::nn::functional::cross_entropy(
          logits.view({B * T, -1}).to(at_least_float(logits)), y.view({-1}));
    }
    opt.scaled(loss).backward();
    opt.step();
    if (cuda)
      torch::cuda::synchronize(device.index());
    auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (s > 0)
      times.push_back(secs);
  }
  std::sort(times.begin(), times.end());
  double median = times[times.size() / 2];
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::printf("{\"impl\": \"fedsp\", \"preset\": \"%s\", \"model\": \"%s\", \"params\": %lld, "
              "\"batch\": %ld, \"seq\": %ld, \"device\": \"%s\", \"dtype\": \"%s\", "
              "\"median_s\": %.4f, \"tokens_per_s\": %.1f, \"peak_rss_mb\": %.1f}\n",
              preset.c_str(), which.c_str(), static_cast<long long>(model->num_parameters()), B, T,
              plan.value().devices.front().c_str(), dtype.c_str(), median, static_cast<double>(B * T) / median, ru.ru_maxrss / 1024.0);
  return 0;
}
