// GPT-2, computed as Hugging Face's GPT2LMHeadModel computes it, with deep
// prefix soft prompts.
//
// Shapes used throughout (written once here, annotated on tensor lines):
//   B batch, T sequence length (<= n_positions), C = n_embd, V = vocab_size,
//   L depth (layers run), H = n_head, hd = C / H, P prefix positions per layer.
//
// Architecture (HF GPT2Model): token + learned position embeddings; L
// pre-LayerNorm blocks (ln_1 -> causal self-attention -> residual, ln_2 ->
// MLP with GELU tanh approximation ("gelu_new") -> residual), LayerNorm eps
// from the config; final LayerNorm ln_f; LM head tied to the token embedding.
// Linear maps use HF's Conv1D layout, weight (in, out), y = x W + b, so HF
// checkpoints load without transposition. Parameter names are HF's
// (`wte.weight`, `h.0.attn.c_attn.weight`, ...). No dropout in the body: the
// body is either frozen (prompt tuning) or distilled deterministically.
//
// Deep prefix tuning (Li & Liang 2021): layer l gets prefix[l][0] (keys) and
// prefix[l][1] (values), each (H, P, hd). Prefix positions take no position
// embedding; tokens keep positions 0..T-1; every token attends to the whole
// prefix and causally to the tokens.
//
// Depth and blocks: `h` holds the distinct blocks; layer l runs block
// layer_block[l]. The global model runs h[l] at layer l. The auxiliary model
// (auxiliary.hpp) repeats a shared cell, so its `h` holds each shared block
// once and its parameters count (and train) once.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "runtime/error.hpp"

namespace fedsp::models {

struct gpt2_config {
  std::int64_t n_layer = 4;       // blocks in the global model
  std::int64_t n_head = 4;        // H
  std::int64_t n_embd = 128;      // C
  std::int64_t n_positions = 256; // max T
  std::int64_t vocab_size = 256;  // V
  double layer_norm_epsilon = 1e-5;
  double initializer_range = 0.02; // std of random weights (GPT-2's)
  std::string tokenizer = "byte";  // byte | gpt2: what the ids mean

  std::int64_t head_dim() const { return n_embd / n_head; }
};

/// tiny (byte vocabulary, 4 x 128, 4 heads, 256 positions: the default for
/// a 2-core machine), gpt2 (124M), gpt2-medium, gpt2-large, gpt2-xl.
result<gpt2_config> gpt2_preset(const std::string& name);

/// Names of the presets, for messages.
const char* gpt2_preset_names();

class conv1d_impl : public torch::nn::Module {
public:
  conv1d_impl(std::int64_t nx, std::int64_t nf);
  /// x (..., nx) -> (..., nf)
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight, bias; // (nx, nf), (nf)
};
TORCH_MODULE_IMPL(conv1d, conv1d_impl);

class attention_impl : public torch::nn::Module {
public:
  explicit attention_impl(const gpt2_config& cfg);
  /// x (B, T, C); prefix (2, H, P, hd) or undefined -> (B, T, C)
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& prefix);

private:
  std::int64_t n_head_, n_embd_;
  conv1d c_attn_{nullptr}, c_proj_{nullptr};
};
TORCH_MODULE_IMPL(attention, attention_impl);

class mlp_impl : public torch::nn::Module {
public:
  explicit mlp_impl(const gpt2_config& cfg);
  torch::Tensor forward(const torch::Tensor& x); // (B, T, C) -> (B, T, C)

private:
  conv1d c_fc_{nullptr}, c_proj_{nullptr};
};
TORCH_MODULE_IMPL(mlp, mlp_impl);

class block_impl : public torch::nn::Module {
public:
  explicit block_impl(const gpt2_config& cfg);
  /// x (B, T, C); prefix (2, H, P, hd) or undefined -> (B, T, C)
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& prefix);

private:
  torch::nn::LayerNorm ln_1_{nullptr}, ln_2_{nullptr};
  attention attn_{nullptr};
  mlp mlp_{nullptr};
};
TORCH_MODULE_IMPL(block, block_impl);

class gpt_impl : public torch::nn::Module {
public:
  /// A model with n_layer distinct blocks, weights drawn from
  /// N(0, initializer_range) with `seed` (residual projections scaled by
  /// 1/sqrt(2 n_layer), as GPT-2), LayerNorms at (1, 0), biases 0. Uses a
  /// private generator: building a model never touches global random state.
  gpt_impl(const gpt2_config& cfg, std::uint64_t seed);

  /// A model running `blocks` in the order `layer_block` (auxiliary models).
  gpt_impl(const gpt2_config& cfg, std::int64_t n_blocks,
           std::vector<std::int64_t> layer_block);

  /// idx (B, T) int64; prefix (L, 2, H, P, hd) or undefined -> (B, T, C),
  /// the final hidden states after ln_f.
  torch::Tensor hidden(const torch::Tensor& idx, const torch::Tensor& prefix);

  /// hidden (B, T, C) -> logits (B, T, V) through the tied head.
  torch::Tensor head(const torch::Tensor& hidden);

  /// hidden() then head().
  torch::Tensor forward(const torch::Tensor& idx, const torch::Tensor& prefix);

  const gpt2_config& config() const { return cfg_; }
  std::int64_t depth() const { return static_cast<std::int64_t>(layer_block_.size()); }
  const std::vector<std::int64_t>& layer_block() const { return layer_block_; }
  std::int64_t num_blocks() const { return static_cast<std::int64_t>(blocks_->size()); }
  block block_at(std::int64_t i) const;

  /// Unique parameters (shared blocks once).
  std::int64_t num_parameters() const;

  /// Parameters of the body: everything (prompts are a separate module).
  std::vector<torch::Tensor> body_parameters() { return parameters(); }

  /// Freezes or unfreezes every parameter.
  void set_trainable(bool on);

private:
  void build(std::int64_t n_blocks);

  gpt2_config cfg_;
  std::vector<std::int64_t> layer_block_;
  torch::nn::Embedding wte_{nullptr}, wpe_{nullptr};
  torch::nn::ModuleList blocks_;
  torch::nn::LayerNorm ln_f_{nullptr};
};
TORCH_MODULE_IMPL(gpt, gpt_impl);

} // namespace fedsp::models
