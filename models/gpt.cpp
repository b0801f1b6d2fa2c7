#include "models/gpt.hpp"

#include <cmath>
#include <limits>

#include <ATen/CPUGeneratorImpl.h>

namespace fedsp::models {

// -- presets --------------------------------------------------------------------------

const char* gpt2_preset_names() {
  return "tiny, gpt2, gpt2-medium, gpt2-large, gpt2-xl";
}

result<gpt2_config> gpt2_preset(const std::string& name) {
  auto gpt2 = [](std::int64_t layers, std::int64_t heads, std::int64_t width) {
    gpt2_config c;
    c.n_layer = layers;
    c.n_head = heads;
    c.n_embd = width;
    c.n_positions = 1024;
    c.vocab_size = 50257;
    c.tokenizer = "gpt2";
    return c;
  };
  if (name == "tiny")
    return gpt2_config{}; // 4 x 128, 4 heads, 256 positions, bytes
  if (name == "gpt2")
    return gpt2(12, 12, 768);
  if (name == "gpt2-medium")
    return gpt2(24, 16, 1024);
  if (name == "gpt2-large")
    return gpt2(36, 20, 1280);
  if (name == "gpt2-xl")
    return gpt2(48, 25, 1600);
  return error{errc::bad_argument, "unknown model preset '" + name + "' (known: "
                                     + gpt2_preset_names() + ")"};
}

// -- modules ----------------------------------------------------------------------------

conv1d_impl::conv1d_impl(std::int64_t nx, std::int64_t nf) {
  weight = register_parameter("weight", torch::zeros({nx, nf}));
  bias = register_parameter("bias", torch::zeros({nf}));
}

torch::Tensor conv1d_impl::forward(const torch::Tensor& x) {
  auto sizes = x.sizes().vec();
  sizes.back() = weight.size(1);
  // (N, nx) x (nx, nf) + (nf) -> (N, nf), N = product of the leading dims
  return torch::addmm(bias, x.reshape({-1, x.size(-1)}), weight).view(sizes);
}

attention_impl::attention_impl(const gpt2_config& cfg)
  : n_head_(cfg.n_head), n_embd_(cfg.n_embd) {
  c_attn_ = register_module("c_attn", conv1d(cfg.n_embd, 3 * cfg.n_embd));
  c_proj_ = register_module("c_proj", conv1d(cfg.n_embd, cfg.n_embd));
}

torch::Tensor attention_impl::forward(const torch::Tensor& x,
                                      const torch::Tensor& prefix) {
  auto B = x.size(0), T = x.size(1), C = n_embd_, H = n_head_, hd = C / H;
  auto qkv = c_attn_(x).split(C, 2);                   // 3 x (B, T, C)
  auto q = qkv[0].view({B, T, H, hd}).transpose(1, 2); // (B, H, T, hd)
  auto k = qkv[1].view({B, T, H, hd}).transpose(1, 2); // (B, H, T, hd)
  auto v = qkv[2].view({B, T, H, hd}).transpose(1, 2); // (B, H, T, hd)
  std::int64_t P = 0;
  if (prefix.defined() && prefix.size(2) > 0) {
    P = prefix.size(2);
    auto pk = prefix[0].unsqueeze(0).expand({B, H, P, hd}); // (B, H, P, hd)
    auto pv = prefix[1].unsqueeze(0).expand({B, H, P, hd}); // (B, H, P, hd)
    k = torch::cat({pk, k}, 2);                              // (B, H, P+T, hd)
    v = torch::cat({pv, v}, 2);                              // (B, H, P+T, hd)
  }
  auto att = torch::matmul(q, k.transpose(-2, -1))
             / std::sqrt(static_cast<double>(hd)); // (B, H, T, P+T)
  // Token i sees the prefix and tokens 0..i: key j is allowed when j < P or
  // j - P <= i, the causal mask shifted right by P. HF fills masked scores
  // with the dtype's lowest value rather than -inf; after softmax both are 0.
  auto allowed = torch::ones({T, P + T}, torch::dtype(torch::kBool).device(x.device()))
                   .tril(P); // (T, P+T)
  att = att.masked_fill(allowed.logical_not(), std::numeric_limits<float>::lowest());
  att = torch::softmax(att, -1);
  auto y = torch::matmul(att, v);                     // (B, H, T, hd)
  y = y.transpose(1, 2).contiguous().view({B, T, C}); // (B, T, C)
  return c_proj_(y);
}

mlp_impl::mlp_impl(const gpt2_config& cfg) {
  c_fc_ = register_module("c_fc", conv1d(cfg.n_embd, 4 * cfg.n_embd));
  c_proj_ = register_module("c_proj", conv1d(4 * cfg.n_embd, cfg.n_embd));
}

torch::Tensor mlp_impl::forward(const torch::Tensor& x) {
  return c_proj_(torch::gelu(c_fc_(x), "tanh")); // (B, T, 4C) inside
}

block_impl::block_impl(const gpt2_config& cfg) {
  auto ln = torch::nn::LayerNormOptions({cfg.n_embd}).eps(cfg.layer_norm_epsilon);
  ln_1_ = register_module("ln_1", torch::nn::LayerNorm(ln));
  attn_ = register_module("attn", attention(cfg));
  ln_2_ = register_module("ln_2", torch::nn::LayerNorm(ln));
  mlp_ = register_module("mlp", mlp(cfg));
}

torch::Tensor block_impl::forward(const torch::Tensor& x, const torch::Tensor& prefix) {
  auto h = x + attn_(ln_1_(x), prefix); // (B, T, C)
  return h + mlp_(ln_2_(h));            // (B, T, C)
}

// -- the model --------------------------------------------------------------------------

void gpt_impl::build(std::int64_t n_blocks) {
  wte_ = register_module("wte", torch::nn::Embedding(cfg_.vocab_size, cfg_.n_embd));
  wpe_ = register_module("wpe", torch::nn::Embedding(cfg_.n_positions, cfg_.n_embd));
  blocks_ = register_module("h", torch::nn::ModuleList());
  for (std::int64_t b = 0; b < n_blocks; ++b)
    blocks_->push_back(block(cfg_));
  ln_f_ = register_module("ln_f", torch::nn::LayerNorm(torch::nn::LayerNormOptions(
                                                          {cfg_.n_embd})
                                                          .eps(cfg_.layer_norm_epsilon)));
}

gpt_impl::gpt_impl(const gpt2_config& cfg, std::uint64_t seed) : cfg_(cfg) {
  for (std::int64_t l = 0; l < cfg.n_layer; ++l)
    layer_block_.push_back(l);
  build(cfg.n_layer);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  torch::NoGradGuard no_grad;
  double std = cfg.initializer_range;
  double proj_std = std / std::sqrt(2.0 * static_cast<double>(cfg.n_layer));
  for (auto& item : named_parameters()) {
    auto& name = item.key();
    auto& p = item.value();
    auto ends_with = [&](const char* suffix) {
      std::string s(suffix);
      return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
    };
    if (name.find("ln_") != std::string::npos)
      continue; // LayerNorm: weight 1, bias 0
    if (ends_with("bias"))
      p.zero_();
    else if (ends_with("c_proj.weight"))
      p.normal_(0.0, proj_std, gen);
    else
      p.normal_(0.0, std, gen);
  }
}

gpt_impl::gpt_impl(const gpt2_config& cfg, std::int64_t n_blocks,
                   std::vector<std::int64_t> layer_block)
  : cfg_(cfg), layer_block_(std::move(layer_block)) {
  build(n_blocks);
}

block gpt_impl::block_at(std::int64_t i) const {
  return block(blocks_->ptr<block_impl>(static_cast<std::size_t>(i)));
}

torch::Tensor gpt_impl::hidden(const torch::Tensor& idx, const torch::Tensor& prefix) {
  auto T = idx.size(1);
  TORCH_CHECK(T <= cfg_.n_positions, "sequence of ", T, " tokens exceeds n_positions ",
              cfg_.n_positions);
  TORCH_CHECK(!prefix.defined() || prefix.size(0) == depth(), "prefix has ",
              prefix.size(0), " layers, the model runs ", depth());
  auto pos = torch::arange(T, torch::dtype(torch::kLong).device(idx.device())); // (T)
  auto x = wte_(idx) + wpe_(pos).unsqueeze(0);                                 // (B, T, C)
  for (std::int64_t l = 0; l < depth(); ++l) {
    auto layer_prefix = prefix.defined() ? prefix[l] : torch::Tensor(); // (2, H, P, hd)
    x = blocks_[static_cast<std::size_t>(layer_block_[static_cast<std::size_t>(l)])]
          ->as<block_impl>()
          ->forward(x, layer_prefix);
  }
  return ln_f_(x); // (B, T, C)
}

torch::Tensor gpt_impl::head(const torch::Tensor& h) {
  return torch::matmul(h, wte_->weight.t()); // (B, T, V)
}

torch::Tensor gpt_impl::forward(const torch::Tensor& idx, const torch::Tensor& prefix) {
  return head(hidden(idx, prefix));
}

std::int64_t gpt_impl::num_parameters() const {
  std::int64_t n = 0;
  for (auto& p : parameters())
    n += p.numel();
  return n;
}

void gpt_impl::set_trainable(bool on) {
  for (auto& p : parameters())
    p.set_requires_grad(on);
}

} // namespace fedsp::models
