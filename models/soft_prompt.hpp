// Soft prompts as an adapter, apart from the frozen base model (an adapter
// is a separate object; docs/architecture.md). Only its parameters reach an optimizer and
// the wire.
//
// Output: prefix (L, 2, H, P, hd), per layer keys (index 0) and values
// (index 1) for P prefix positions (gpt.hpp).
//
// Two parameterisations:
//   direct        one parameter "prefix" of that shape;
//   reparameterised  (Li & Liang 2021; the reference code's use_prefix_prj)
//                 an embedding (P, C) -> Linear(C, R) -> Tanh -> Linear(R,
//                 L*2*C) -> reshaped to (L, 2, H, P, hd). Its parameters are
//                 what travels, so clients and server keep tuning the same
//                 function; `materialize()` gives the plain prefix.
// Dropout on the prefix in training mode (the module's train()/eval()).
#pragma once

#include <cstdint>

#include <torch/torch.h>

#include "runtime/prompt_set.hpp"

namespace fedsp::models {

struct soft_prompt_config {
  std::int64_t depth = 4;    // L: layers of the model it serves
  std::int64_t n_head = 4;   // key/value heads of the model (KV; H without GQA)
  std::int64_t head_dim = 32; // hd
  std::int64_t length = 16;  // P
  bool reparameterize = false;
  std::int64_t hidden = 512; // R, reparameterisation width
  double dropout = 0.0;      // on the prefix, in training
  double init_std = 0.5;     // direct: std of the initial prefix
};

class soft_prompt_impl : public torch::nn::Module {
public:
  soft_prompt_impl(const soft_prompt_config& cfg, std::uint64_t seed);

  /// The prefix (L, 2, H, P, hd), with dropout when training.
  torch::Tensor forward();

  /// The prefix without dropout, detached.
  torch::Tensor materialize();

  /// Every parameter as a named buffer (what goes on the wire).
  prompt_set to_prompts(std::uint64_t version);

  /// Loads values; the layout must equal to_prompts()'s, values finite.
  std::optional<error> load(const prompt_set& ps);

  /// Names and shapes (data empty): the layout every message must match.
  prompt_set layout();

  const soft_prompt_config& config() const { return cfg_; }

private:
  soft_prompt_config cfg_;
  torch::Tensor prefix_;                      // direct
  torch::nn::Embedding embedding_{nullptr};   // reparameterised
  torch::nn::Linear down_{nullptr}, up_{nullptr};
};
TORCH_MODULE_IMPL(soft_prompt, soft_prompt_impl);

/// Maps a prefix (L_from, 2, H, P, hd) to another depth: layer i of the
/// result takes layer `source[i]` (see auxiliary.hpp for the maps).
torch::Tensor remap_layers(const torch::Tensor& prefix, const std::vector<std::int64_t>& source);

} // namespace fedsp::models
