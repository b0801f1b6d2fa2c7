// The torch-free face of models/: a frozen base model plus the operations the
// federation needs on soft prompts (create, train, evaluate). Actors include
// this header only, so they compile without torch.
//
// Prompts travel as one tensor named "prefix" of shape (L, 2, H, P, hd):
// per layer, P key vectors (index 0) and P value vectors (index 1) per head.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "runtime/dataset.hpp"
#include "runtime/error.hpp"
#include "runtime/prompt_set.hpp"
#include "runtime/scenario.hpp"

namespace fedsp {

struct train_params {
  std::uint32_t steps = 10;
  double learning_rate = 0.03;
  std::uint32_t batch_size = 8;
  std::uint64_t seed = 0; // batch sampling
};

struct train_report {
  prompt_set prompts;        // tuned prompts, same layout as the input
  double loss_before = 0;    // answer-token loss on the probe batch, before
  double loss_after = 0;     // ... and after the prompt stage
  double train_loss_first = 0; // loss of the first optimizer step's batch
  double train_loss_last = 0;  // loss of the last optimizer step's batch
  std::uint64_t num_samples = 0; // size of the local data (FedAvg weight)
};

struct eval_report {
  double acc = 0;      // argmax of summed choice log-likelihood is the label
  double acc_norm = 0; // same, normalised by the choice's length in bytes
  double loss = 0;     // mean per-token NLL of the correct choice
  std::uint64_t num_examples = 0;
};

class prompt_model {
public:
  /// Builds the frozen base model (random weights from `seed`).
  prompt_model(const model_params& params, std::uint64_t seed);
  ~prompt_model();
  prompt_model(prompt_model&&) noexcept;
  prompt_model& operator=(prompt_model&&) noexcept;

  /// Names and shapes of the prompts this model takes (data empty).
  prompt_set layout() const;

  /// Fresh prompts drawn from N(0, params.prompt_init_std) with `seed`.
  prompt_set initial_prompts(std::uint64_t seed) const;

  /// Tunes the prompts on `data` (only the prompts train; loss on the answer
  /// tokens only). Errors: layout mismatch, non-finite prompts, empty data,
  /// or a torch failure (its message kept).
  result<train_report> train(const prompt_set& prompts,
                             const std::vector<mc_example>& data,
                             const train_params& params) const;

  /// Multiple-choice scoring of `data` with these prompts, batched.
  result<eval_report> evaluate(const prompt_set& prompts,
                               const std::vector<mc_example>& data) const;

  /// Parameters of the frozen base model.
  std::uint64_t num_parameters() const;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// Sets torch's intra-op thread count (process-wide).
void set_compute_threads(int n);

} // namespace fedsp
