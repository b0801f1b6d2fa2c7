// Training: the client's alternating stages, the server's prompt tuning,
// distillation of the auxiliary model, and pretraining of a global model.
//
// Optimisers are AdamW with a linear warmup then a linear decay to zero over
// the stage's planned total steps. A client's two stages ("model" and
// "prompt") each keep their own optimiser and schedule across rounds, as the
// reference implementation does. Losses on task data are computed on the
// answer tokens only (scoring.hpp).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "models/gpt.hpp"
#include "models/scoring.hpp"
#include "models/soft_prompt.hpp"

namespace fedsp::models {

/// Linear warmup over `warmup` steps to `base`, then linear decay to 0 at `total`.
struct lr_schedule {
  double base = 1e-3;
  std::int64_t warmup = 0;
  std::int64_t total = 1;
  double at(std::int64_t step) const;
};

/// One AdamW optimiser with its schedule; the step count persists.
class optimizer_stage {
public:
  /// dtype "f16" (compute.dtype) turns on loss scaling (enable_loss_scaling).
  optimizer_stage(std::vector<torch::Tensor> params, lr_schedule schedule,
                  double weight_decay, const std::string& dtype = "f32");
  /// Applies the scheduled learning rate, steps, clears gradients; with
  /// max_norm > 0 the gradients are clipped to that norm first. With loss
  /// scaling, the gradients are unscaled first and a step whose gradients
  /// are not finite is skipped (false; the scale halves, gradients clear).
  bool step(double max_norm = 0);
  /// f16 mixed precision (models/precision.hpp): dynamic loss scaling, as
  /// torch.cuda.amp.GradScaler does it: start at 2^16, halve on a skipped
  /// step, double after 2,000 steps in a row without one.
  void enable_loss_scaling(double initial = 65536.0) { scale_ = initial; }
  /// The loss to call backward() on: scaled when loss scaling is on.
  torch::Tensor scaled(const torch::Tensor& loss) const { return scale_ > 0 ? loss * scale_ : loss; }
  double loss_scale() const { return scale_; }
  std::int64_t steps_skipped() const { return skipped_; }
  std::int64_t steps_done() const { return done_; }
  double current_lr() const { return schedule_.at(done_); }
  /// Its state (AdamW's moments and step counts, the schedule's position)
  /// as bytes, and back (a checkpoint of the server step). Errors name what
  /// does not fit.
  std::string save() const;
  std::optional<error> load(const std::string& bytes);
  /// AdamW's moment tensors (what a paged-out session moves to the host).
  std::vector<torch::Tensor> state_tensors();

private:
  std::vector<torch::Tensor> params_;
  std::unique_ptr<torch::optim::AdamW> opt_;
  lr_schedule schedule_;
  std::int64_t done_ = 0;
  double scale_ = 0;          // 0: no loss scaling
  std::int64_t good_ = 0, skipped_ = 0;
};

struct client_params {
  std::int64_t model_steps = 10;   // stage "model": body trains, prompts frozen
  std::int64_t prompt_steps = 10;  // stage "prompt": prompts train, body frozen
  std::int64_t batch = 8;          // examples per micro-batch
  std::int64_t accumulate = 1;     // micro-batches per optimizer step
  double model_lr = 1e-4;
  double prompt_lr = 5e-2;         // the reference code's client prompt lr
  double weight_decay = 0.0;
  std::int64_t rounds = 1;         // planned rounds (for the decay)
  double warmup_fraction = 0.1;
  std::string dtype = "f32";       // compute.dtype: f16 scales the loss (models/precision.hpp)
  // The body is shared with other sessions (compute.share_frozen_body;
  // model_steps must be 0): it is not this trainer's state to page or move.
  bool shared_body = false;
};

struct stage_losses {
  double first = 0, last = 0; // loss of the first and last optimizer step
};

struct client_report {
  prompt_set prompts;
  stage_losses model_stage, prompt_stage;
  double loss_before = 0, loss_after = 0; // on a fixed probe of the local data
  std::uint64_t num_samples = 0;
};

/// A FedSP client: the auxiliary body and the prompts, trained in turns.
class client_trainer {
public:
  /// `layer_map` (empty: identity) maps the prompts' layers onto the body's:
  /// body layer j runs prompt layer layer_map[j] (an auxiliary model of
  /// another depth; auxiliary.hpp). Prompts keep the global layout.
  client_trainer(gpt body, soft_prompt prompt, client_params params,
                 std::vector<std::int64_t> layer_map = {});

  /// Loads `prompts`, runs stage "model" then stage "prompt" on `data` and
  /// returns the tuned prompts. Errors: layout mismatch, non-finite values,
  /// empty data, a torch failure.
  result<client_report> round(const prompt_set& prompts,
                              const std::vector<encoded_example>& data, std::uint64_t seed);

  gpt& body() { return body_; }
  soft_prompt& prompt() { return prompt_; }
  /// Every tensor the trainer keeps between rounds: the body's and the
  /// prompts' parameters, their gradients, both stages' AdamW moments; a
  /// shared body's are not among them.
  std::vector<torch::Tensor> state_tensors();
  /// Runs on `body` from now on (a shared body's copy on another device,
  /// after the session moved); only for a shared body, which never trains.
  void rebind_body(gpt body);

private:
  torch::Tensor for_body(const torch::Tensor& prefix) const;

  gpt body_;
  soft_prompt prompt_;
  client_params p_;
  std::vector<std::int64_t> layer_map_;
  optimizer_stage model_stage_, prompt_stage_;
};

struct server_params {
  std::int64_t steps = 10;
  std::int64_t batch = 8;
  std::int64_t accumulate = 1;
  double lr = 5e-3;                // the reference code's server prompt lr
  double weight_decay = 0.0;
  std::int64_t rounds = 1;
  double warmup_fraction = 0.1;
  double distill_weight = 0.0;     // lambda of the KD term from the auxiliary model
  double temperature = 1.0;
  std::string dtype = "f32";       // compute.dtype: f16 scales the loss (models/precision.hpp)
};

struct server_report {
  prompt_set prompts;
  stage_losses losses;
  double loss_before = 0, loss_after = 0;
};

/// The server step: tunes the aggregated prompts on the frozen global model,
/// optionally pulled towards the auxiliary model's answers:
///   loss = CE(global) + lambda * T^2 * KL(softmax(aux / T) || softmax(global / T))
/// on the answer positions, the auxiliary model running the same prompts
/// mapped to its depth (aux layer j takes global layer to_global[j]).
class server_trainer {
public:
  server_trainer(gpt global, soft_prompt prompt, server_params params, gpt aux = nullptr,
                 std::vector<std::int64_t> to_global = {});

  result<server_report> round(const prompt_set& prompts,
                              const std::vector<encoded_example>& data, std::uint64_t seed);

  soft_prompt& prompt() { return prompt_; }
  /// The optimizer's state across rounds (optimizer_stage::save / load).
  std::string save_state() const { return stage_.save(); }
  std::optional<error> load_state(const std::string& bytes) { return stage_.load(bytes); }

private:
  gpt global_;
  soft_prompt prompt_;
  server_params p_;
  gpt aux_;
  std::vector<std::int64_t> to_global_;
  optimizer_stage stage_;
};

// -- language-model training --------------------------------------------------------------

struct lm_params {
  std::int64_t steps = 1000;
  std::int64_t batch = 16;
  std::int64_t seq_len = 256;
  double lr = 1e-3;
  double weight_decay = 0.1;
  double warmup_fraction = 0.05;
  std::int64_t eval_every = 100;   // held-out loss every N steps (0: only at the end)
  std::int64_t eval_batches = 8;
  std::uint64_t seed = 1;
  std::string dtype = "f32";       // compute.dtype: f16 scales the loss (models/precision.hpp)
};

/// Progress: (step, training loss, held-out loss or NaN when not evaluated).
using progress_fn = std::function<void(std::int64_t, double, double)>;

struct lm_report {
  double first_loss = 0, last_loss = 0;
  double heldout_loss = 0;              // at the end
  std::vector<std::pair<std::int64_t, double>> heldout_curve;
};

/// Mean next-token loss on `batches` fixed windows of `tokens`.
double heldout_loss(gpt& model, const std::vector<std::int64_t>& tokens,
                    std::int64_t seq_len, std::int64_t batch, std::int64_t batches);

/// Next-token training on random windows of a token stream.
result<lm_report> pretrain(gpt& model, const std::vector<std::int64_t>& train,
                           const std::vector<std::int64_t>& heldout, const lm_params& p,
                           const progress_fn& progress = nullptr);

struct distill_params {
  lm_params lm{5000, 16, 128, 5e-4, 0.01, 0.1, 500, 4, 1};
  std::string loss = "mse";   // mse (paper default) | mixed | prompted
  std::int64_t prompt_length = 16; // prompted: the prefixes drawn
  double prompt_std = 0.5;         // prompted: their scale (the prompts' init std)
};

/// Knowledge distillation: `student` (all parameters train) towards the
/// frozen `teacher`, no prompts. Loss "mse": MSE of the final hidden states;
/// "mixed": 0.5 LM + 0.5 (MSE + soft cross-entropy of the logits);
/// "prompted": 0.5 MSE without a prefix + 0.5 MSE with the same random
/// prefix in both models (every layer, std prompt_std times e^U, U uniform
/// in [-1, 1], drawn per step), so that a prompt moves the student's
/// hidden states as it moves the teacher's (both must have the same depth).
/// The reported held-out figure is the distillation loss on held-out windows.
result<lm_report> distill(gpt& student, gpt& teacher, const std::vector<std::int64_t>& train,
                          const std::vector<std::int64_t>& heldout, const distill_params& p,
                          const progress_fn& progress = nullptr);

} // namespace fedsp::models
