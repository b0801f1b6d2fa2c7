#include "models/gpt.hpp"

#include <cmath>

#include <ATen/CPUGeneratorImpl.h>

namespace fedsp::models {

namespace F = torch::nn::functional;

attention_impl::attention_impl(const gpt_config& cfg)
  : n_head_(cfg.n_head), n_embd_(cfg.n_embd) {
  c_attn_ = register_module("c_attn", torch::nn::Linear(cfg.n_embd, 3 * cfg.n_embd));
  c_proj_ = register_module("c_proj", torch::nn::Linear(cfg.n_embd, cfg.n_embd));
}

torch::Tensor attention_impl::forward(const torch::Tensor& x,
                                      const torch::Tensor& prefix) {
  auto B = x.size(0), T = x.size(1), C = n_embd_, H = n_head_, hd = C / H;
  auto qkv = c_attn_(x).split(C, 2);                  // 3 x (B, T, C)
  auto q = qkv[0].view({B, T, H, hd}).transpose(1, 2); // (B, H, T, hd)
  auto k = qkv[1].view({B, T, H, hd}).transpose(1, 2); // (B, H, T, hd)
  auto v = qkv[2].view({B, T, H, hd}).transpose(1, 2); // (B, H, T, hd)
  std::int64_t P = 0;
  if (prefix.defined()) {
    P = prefix.size(2);
    auto pk = prefix[0].unsqueeze(0).expand({B, H, P, hd}); // (B, H, P, hd)
    auto pv = prefix[1].unsqueeze(0).expand({B, H, P, hd}); // (B, H, P, hd)
    k = torch::cat({pk, k}, 2);                              // (B, H, P+T, hd)
    v = torch::cat({pv, v}, 2);                              // (B, H, P+T, hd)
  }
  auto att = torch::matmul(q, k.transpose(-2, -1))
             * (1.0 / std::sqrt(static_cast<double>(hd))); // (B, H, T, P+T)
  // Token i sees the whole prefix and tokens 0..i: key j is allowed when
  // j < P or j - P <= i, i.e. the causal mask shifted right by P.
  auto allowed = torch::ones({T, P + T}, torch::dtype(torch::kBool).device(x.device()))
                   .tril(P);                                 // (T, P+T)
  att = att.masked_fill(allowed.logical_not(), -std::numeric_limits<float>::infinity());
  att = torch::softmax(att, -1);
  auto y = torch::matmul(att, v);                           // (B, H, T, hd)
  y = y.transpose(1, 2).contiguous().view({B, T, C});       // (B, T, C)
  return c_proj_(y);
}

block_impl::block_impl(const gpt_config& cfg) {
  auto ln = torch::nn::LayerNormOptions({cfg.n_embd}).eps(cfg.ln_eps);
  ln_1_ = register_module("ln_1", torch::nn::LayerNorm(ln));
  attn_ = register_module("attn", attention(cfg));
  ln_2_ = register_module("ln_2", torch::nn::LayerNorm(ln));
  c_fc_ = register_module("c_fc", torch::nn::Linear(cfg.n_embd, 4 * cfg.n_embd));
  mlp_proj_ = register_module("mlp_proj", torch::nn::Linear(4 * cfg.n_embd, cfg.n_embd));
}

torch::Tensor block_impl::forward(const torch::Tensor& x,
                                  const torch::Tensor& prefix) {
  auto h = x + attn_(ln_1_(x), prefix);                                // (B, T, C)
  return h + mlp_proj_(torch::gelu(c_fc_(ln_2_(h)), "tanh"));          // (B, T, C)
}

gpt_impl::gpt_impl(const gpt_config& cfg, std::uint64_t seed) : cfg_(cfg) {
  wte_ = register_module("wte", torch::nn::Embedding(cfg.vocab, cfg.n_embd));
  wpe_ = register_module("wpe", torch::nn::Embedding(cfg.n_ctx, cfg.n_embd));
  blocks_ = register_module("h", torch::nn::ModuleList());
  for (std::int64_t l = 0; l < cfg.n_layer; ++l)
    blocks_->push_back(block(cfg));
  ln_f_ = register_module(
    "ln_f", torch::nn::LayerNorm(torch::nn::LayerNormOptions({cfg.n_embd}).eps(cfg.ln_eps)));

  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  torch::NoGradGuard no_grad;
  double proj_std = cfg.init_std / std::sqrt(2.0 * static_cast<double>(cfg.n_layer));
  for (auto& item : named_parameters()) {
    auto& name = item.key();
    auto& p = item.value();
    bool is_ln = name.find("ln_") != std::string::npos;
    bool is_bias = name.size() >= 4 && name.compare(name.size() - 4, 4, "bias") == 0;
    if (is_ln)
      continue; // LayerNorm: weight 1, bias 0 (torch's default)
    if (is_bias)
      p.zero_();
    else if (name.find("c_proj.weight") != std::string::npos
             || name.find("mlp_proj.weight") != std::string::npos)
      p.normal_(0.0, proj_std, gen);
    else
      p.normal_(0.0, cfg.init_std, gen);
  }
}

torch::Tensor gpt_impl::forward(const torch::Tensor& idx,
                                const torch::Tensor& prefix) {
  auto T = idx.size(1);
  TORCH_CHECK(T <= cfg_.n_ctx, "sequence of ", T, " tokens exceeds n_ctx ", cfg_.n_ctx);
  auto pos = torch::arange(T, torch::dtype(torch::kLong).device(idx.device())); // (T)
  auto x = wte_(idx) + wpe_(pos).unsqueeze(0);                                 // (B, T, C)
  for (std::size_t l = 0; l < blocks_->size(); ++l) {
    auto layer_prefix = prefix.defined() ? prefix[static_cast<std::int64_t>(l)]
                                         : torch::Tensor();           // (2, H, P, hd)
    x = blocks_[l]->as<block_impl>()->forward(x, layer_prefix);
  }
  x = ln_f_(x);                                                        // (B, T, C)
  return torch::matmul(x, wte_->weight.t());                           // (B, T, V)
}

} // namespace fedsp::models
