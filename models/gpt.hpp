// A small GPT-2-style decoder with deep prefix soft prompts.
//
// Shapes used throughout (STYLE.md):
//   B batch, T sequence length (<= n_ctx), C width, V vocabulary (256 bytes),
//   L layers, H heads, hd = C / H, P prefix (prompt) positions per layer.
//
// Architecture as GPT-2: learned position embeddings, pre-LayerNorm blocks,
// causal self-attention, GELU (tanh approximation), final LayerNorm, LM head
// tied to the token embedding. Deep prefix tuning (Li & Liang 2021): each
// layer l gets P extra key and value vectors per head, prefix[l][0] (keys) and
// prefix[l][1] (values), of shape (H, P, hd). Prefix positions take no position
// embedding and every token attends to the whole prefix.
//
// This file is the only place that knows the module structure; the rest of
// the project goes through prompt_model.hpp, which does not include torch.
#pragma once

#include <cstdint>

#include <torch/torch.h>

namespace fedsp::models {

struct gpt_config {
  std::int64_t n_layer = 2;   // L
  std::int64_t n_embd = 64;   // C
  std::int64_t n_head = 4;    // H
  std::int64_t n_ctx = 128;   // max T
  std::int64_t vocab = 256;   // V: byte-level
  double ln_eps = 1e-5;
  double init_std = 0.02;     // std of the random weights (GPT-2's value)
};

class attention_impl : public torch::nn::Module {
public:
  explicit attention_impl(const gpt_config& cfg);
  /// x (B, T, C); prefix (2, H, P, hd) or undefined -> (B, T, C)
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& prefix);

private:
  std::int64_t n_head_, n_embd_;
  torch::nn::Linear c_attn_{nullptr}, c_proj_{nullptr};
};
TORCH_MODULE_IMPL(attention, attention_impl);

class block_impl : public torch::nn::Module {
public:
  explicit block_impl(const gpt_config& cfg);
  /// x (B, T, C); prefix (2, H, P, hd) or undefined -> (B, T, C)
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& prefix);

private:
  torch::nn::LayerNorm ln_1_{nullptr}, ln_2_{nullptr};
  attention attn_{nullptr};
  torch::nn::Linear c_fc_{nullptr}, mlp_proj_{nullptr};
};
TORCH_MODULE_IMPL(block, block_impl);

class gpt_impl : public torch::nn::Module {
public:
  /// Weights drawn from N(0, init_std) with the given seed (residual
  /// projections scaled by 1/sqrt(2L), as GPT-2), using a private generator: building a
  /// model never touches torch's global random state.
  gpt_impl(const gpt_config& cfg, std::uint64_t seed);

  /// idx (B, T) int64 token ids; prefix (L, 2, H, P, hd) or undefined
  /// -> logits (B, T, V)
  torch::Tensor forward(const torch::Tensor& idx, const torch::Tensor& prefix);

  const gpt_config& config() const { return cfg_; }

private:
  gpt_config cfg_;
  torch::nn::Embedding wte_{nullptr}, wpe_{nullptr};
  torch::nn::ModuleList blocks_;
  torch::nn::LayerNorm ln_f_{nullptr};
};
TORCH_MODULE_IMPL(gpt, gpt_impl);

} // namespace fedsp::models
