// Decoder-only language models, computed as Hugging Face computes them, with
// deep prefix soft prompts. One class (`gpt`) serves three families; the
// family picks the block (docs/models.md has a table per family):
//
//   gpt2   GPT2LMHeadModel: token + learned positions; pre-LayerNorm blocks
//          (ln_1 -> attention -> residual, ln_2 -> MLP with gelu_new ->
//          residual); final LayerNorm ln_f; head tied to the embedding.
//          Linear maps in HF's Conv1D layout, weight (in, out), y = x W + b.
//   opt    OPTForCausalLM: learned positions offset by 2; pre- or
//          post-LayerNorm blocks (do_layer_norm_before); ReLU MLP fc1/fc2;
//          q/k/v/out projections with biases, nn.Linear weights (out, in);
//          project_in/project_out where word_embed_proj_dim differs from the
//          width; final LayerNorm only with pre-norm; head tied.
//   llama  LlamaForCausalLM (also mistral and qwen2): RMSNorm; rotary
//          positions (rope_theta; rope_scaling linear or llama3); grouped-query
//          attention (KV heads <= heads); SwiGLU MLP gate/up/down; no biases
//          (qwen2: q/k/v biases); head tied or not as the config says.
//
// Shapes used throughout (written once here, annotated on tensor lines):
//   B batch, T sequence length (<= max_tokens()), C = n_embd, V = vocab_size,
//   L depth (layers run), H = n_head, KV = kv_heads(), hd = head_dim(),
//   P prefix positions per layer, F = inner().
//
// Deep prefix tuning (Li & Liang 2021): layer l gets prefix[l][0] (keys) and
// prefix[l][1] (values), each (KV, P, hd): one per key/value head, so a
// grouped-query model's prompts are shared by the heads of a group. Prefix
// positions take no position: GPT-2 and OPT add no position embedding to
// them, and with rotary positions the prompt keys are stored unrotated (a
// rotation by position 0). Tokens keep positions 0..T-1 in every family, with
// or without prompts, so a prompt is a position-free memory and the same
// prompt means the same thing at any length (docs/models.md, "Prompts and
// positions"). Every token attends to the whole prefix and causally to the
// tokens.
//
// Depth and blocks: `h` (GPT-2) or `layers` (OPT, LLaMA) holds the distinct
// blocks; layer l runs block layer_block[l]. The global model runs block l at
// layer l. The auxiliary model (auxiliary.hpp) repeats a shared cell, so it
// holds each shared block once and its parameters count (and train) once.
//
// Parameter names are Hugging Face's less the family's prefix
// (`transformer.`, `model.decoder.`, `model.`), so checkpoints load by name.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "runtime/error.hpp"

namespace fedsp::models {

struct decoder_config {
  std::string family = "gpt2";     // gpt2 | opt | llama: which block computes
  std::string model_type = "gpt2"; // config.json's: gpt2, opt, llama, mistral, qwen2
  std::int64_t n_layer = 4;        // blocks in the global model
  std::int64_t n_head = 4;         // H
  std::int64_t n_kv_head = 0;      // KV; 0 = H
  std::int64_t n_embd = 128;       // C
  std::int64_t n_positions = 256;  // max T
  std::int64_t vocab_size = 256;   // V
  std::int64_t ffn_dim = 0;        // F, the MLP's inner width; 0 = 4 C
  std::int64_t head_dim_set = 0;   // hd when the config gives it; 0 = C / H
  double layer_norm_epsilon = 1e-5; // LayerNorm eps, or RMSNorm eps (llama)
  double initializer_range = 0.02; // std of random weights
  std::string tokenizer = "byte";  // byte | gpt2 | opt | hf: what the ids mean
  // opt
  bool pre_norm = true;            // do_layer_norm_before
  bool final_norm = true;          // a final norm after the blocks
  std::int64_t embed_dim = 0;      // word_embed_proj_dim; 0 = C
  // llama
  double rope_theta = 10000.0;
  std::string rope_type = "default"; // default | linear | llama3
  double rope_factor = 1.0;
  double rope_low_freq_factor = 1.0, rope_high_freq_factor = 4.0; // llama3
  std::int64_t rope_original_max = 8192;                          // llama3
  bool qkv_bias = false;           // biases on q/k/v (qwen2; llama attention_bias)
  bool o_bias = false;             // bias on o_proj (llama attention_bias)
  bool tie_word_embeddings = true; // head = embedding (gpt2 and opt always)

  std::int64_t head_dim() const { return head_dim_set ? head_dim_set : n_embd / n_head; }
  std::int64_t kv_heads() const { return n_kv_head ? n_kv_head : n_head; }
  std::int64_t inner() const { return ffn_dim ? ffn_dim : 4 * n_embd; }
  std::int64_t embed_width() const { return embed_dim ? embed_dim : n_embd; }
  /// OPT's learned positions start at 2 (HF's OPTLearnedPositionalEmbedding).
  std::int64_t position_offset() const { return family == "opt" ? 2 : 0; }
  /// An error naming what is inconsistent, or nothing.
  std::optional<error> check() const;
};

/// GPT-2: tiny (byte vocabulary, 4 x 128, 4 heads, 256 positions: the default
/// for a 2-core machine), gpt2 (124M), gpt2-medium, gpt2-large, gpt2-xl.
/// OPT: opt-tiny (bytes, 4 x 128), opt-125m, opt-350m, opt-1.3b.
/// LLaMA-style: llama-tiny (bytes, 4 x 128, 4 heads, 2 KV heads),
/// smollm-135m, qwen2-0.5b, llama-3.2-1b.
result<decoder_config> model_preset(const std::string& name);

/// Names of the presets, for messages.
const char* model_preset_names();

/// Rotary tables for positions 0..T-1: cos and sin, each (T, hd).
struct rotary {
  torch::Tensor cos, sin;
};

/// A transformer block of any family.
class layer_impl : public torch::nn::Module {
public:
  /// x (B, T, C); prefix (2, KV, P, hd) or undefined; rope (llama) -> (B, T, C)
  virtual torch::Tensor run(const torch::Tensor& x, const torch::Tensor& prefix,
                            const rotary& rope) = 0;
};

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
  explicit attention_impl(const decoder_config& cfg);
  /// x (B, T, C); prefix (2, H, P, hd) or undefined -> (B, T, C)
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& prefix);

private:
  std::int64_t n_head_, n_embd_;
  conv1d c_attn_{nullptr}, c_proj_{nullptr};
};
TORCH_MODULE_IMPL(attention, attention_impl);

class mlp_impl : public torch::nn::Module {
public:
  explicit mlp_impl(const decoder_config& cfg);
  torch::Tensor forward(const torch::Tensor& x); // (B, T, C) -> (B, T, C)

private:
  conv1d c_fc_{nullptr}, c_proj_{nullptr};
};
TORCH_MODULE_IMPL(mlp, mlp_impl);

/// GPT-2's block.
class block_impl : public layer_impl {
public:
  explicit block_impl(const decoder_config& cfg);
  /// x (B, T, C); prefix (2, H, P, hd) or undefined -> (B, T, C)
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& prefix);
  torch::Tensor run(const torch::Tensor& x, const torch::Tensor& prefix,
                    const rotary& rope) override;

private:
  torch::nn::LayerNorm ln_1_{nullptr}, ln_2_{nullptr};
  attention attn_{nullptr};
  mlp mlp_{nullptr};
};
TORCH_MODULE_IMPL(block, block_impl);

class gpt_impl : public torch::nn::Module {
public:
  /// A model with n_layer distinct blocks, weights drawn from
  /// N(0, initializer_range) with `seed` (GPT-2: residual projections scaled
  /// by 1/sqrt(2 n_layer)), norms at (1, 0), biases 0. Uses a private
  /// generator: building a model never touches global random state.
  gpt_impl(const decoder_config& cfg, std::uint64_t seed);

  /// A model running `blocks` in the order `layer_block` (auxiliary models).
  gpt_impl(const decoder_config& cfg, std::int64_t n_blocks,
           std::vector<std::int64_t> layer_block);

  /// idx (B, T) int64; prefix (L, 2, KV, P, hd) or undefined -> (B, T, C'),
  /// the final hidden states (C' = the head's input width: C, or OPT's
  /// word_embed_proj_dim).
  torch::Tensor hidden(const torch::Tensor& idx, const torch::Tensor& prefix);

  /// hidden (B, T, C') -> logits (B, T, V) through the head.
  torch::Tensor head(const torch::Tensor& hidden);

  /// hidden() then head().
  torch::Tensor forward(const torch::Tensor& idx, const torch::Tensor& prefix);

  const decoder_config& config() const { return cfg_; }
  std::int64_t depth() const { return static_cast<std::int64_t>(layer_block_.size()); }
  const std::vector<std::int64_t>& layer_block() const { return layer_block_; }
  std::int64_t num_blocks() const { return static_cast<std::int64_t>(blocks_->size()); }
  /// "h" (GPT-2) or "layers": the blocks' name prefix.
  const char* blocks_name() const;
  /// The longest sequence the model takes: n_positions.
  std::int64_t max_tokens() const { return cfg_.n_positions; }

  /// Unique parameters (shared blocks once).
  std::int64_t num_parameters() const;

  /// Parameters of the body: everything (prompts are a separate module).
  std::vector<torch::Tensor> body_parameters() { return parameters(); }

  /// Freezes or unfreezes every parameter.
  void set_trainable(bool on);

private:
  void build(std::int64_t n_blocks);
  rotary rope(std::int64_t T, const torch::Device& device);

  decoder_config cfg_;
  std::vector<std::int64_t> layer_block_;
  torch::nn::Embedding wte_{nullptr}, wpe_{nullptr};
  torch::nn::Linear project_in_{nullptr}, project_out_{nullptr}, lm_head_{nullptr};
  torch::nn::ModuleList blocks_;
  torch::nn::LayerNorm ln_f_{nullptr};
  std::shared_ptr<torch::nn::Module> rms_f_;
  torch::Tensor inv_freq_; // (hd / 2), llama
};
TORCH_MODULE_IMPL(gpt, gpt_impl);

} // namespace fedsp::models
