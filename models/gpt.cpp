#include "models/gpt.hpp"

#include "models/precision.hpp"

#include <cmath>
#include <limits>

#include <ATen/CPUGeneratorImpl.h>

namespace fedsp::models {

// -- presets --------------------------------------------------------------------------

const char* model_preset_names() {
  return "tiny, gpt2, gpt2-medium, gpt2-large, gpt2-xl, opt-tiny, opt-125m, opt-350m, "
         "opt-1.3b, llama-tiny, smollm-135m, qwen2-0.5b, llama-3.2-1b";
}

result<decoder_config> model_preset(const std::string& name) {
  auto gpt2 = [](std::int64_t layers, std::int64_t heads, std::int64_t width) {
    decoder_config c;
    c.n_layer = layers;
    c.n_head = heads;
    c.n_embd = width;
    c.n_positions = 1024;
    c.vocab_size = 50257;
    c.tokenizer = "gpt2";
    return c;
  };
  // OPT (facebook/opt-*'s config.json): 2048 positions, 50,272 ids.
  auto opt = [](std::int64_t layers, std::int64_t heads, std::int64_t width) {
    decoder_config c;
    c.family = c.model_type = "opt";
    c.n_layer = layers;
    c.n_head = heads;
    c.n_embd = width;
    c.ffn_dim = 4 * width;
    c.n_positions = 2048;
    c.vocab_size = 50272;
    c.tokenizer = "opt";
    return c;
  };
  auto llama = [](std::string type, std::int64_t layers, std::int64_t heads, std::int64_t kv,
                  std::int64_t width, std::int64_t ffn, std::int64_t vocab) {
    decoder_config c;
    c.family = "llama";
    c.model_type = std::move(type);
    c.n_layer = layers;
    c.n_head = heads;
    c.n_kv_head = kv;
    c.n_embd = width;
    c.ffn_dim = ffn;
    c.vocab_size = vocab;
    c.n_positions = 2048;
    c.tokenizer = "hf";
    return c;
  };
  if (name == "tiny")
    return decoder_config{}; // 4 x 128, 4 heads, 256 positions, bytes
  if (name == "gpt2")
    return gpt2(12, 12, 768);
  if (name == "gpt2-medium")
    return gpt2(24, 16, 1024);
  if (name == "gpt2-large")
    return gpt2(36, 20, 1280);
  if (name == "gpt2-xl")
    return gpt2(48, 25, 1600);
  if (name == "opt-tiny") {
    auto c = opt(4, 4, 128);
    c.n_positions = 256;
    c.vocab_size = 256;
    c.tokenizer = "byte";
    return c;
  }
  if (name == "opt-125m")
    return opt(12, 12, 768);
  if (name == "opt-350m") { // post-norm, 512-wide embeddings projected in and out
    auto c = opt(24, 16, 1024);
    c.pre_norm = false;
    c.final_norm = false;
    c.embed_dim = 512;
    return c;
  }
  if (name == "opt-1.3b")
    return opt(24, 32, 2048);
  if (name == "llama-tiny") {
    auto c = llama("llama", 4, 4, 2, 128, 352, 256);
    c.n_positions = 256;
    c.tie_word_embeddings = false;
    c.tokenizer = "byte";
    return c;
  }
  if (name == "smollm-135m") // HuggingFaceTB/SmolLM-135M
    return llama("llama", 30, 9, 3, 576, 1536, 49152);
  if (name == "qwen2-0.5b") { // Qwen/Qwen2-0.5B
    auto c = llama("qwen2", 24, 14, 2, 896, 4864, 151936);
    c.qkv_bias = true;
    c.rope_theta = 1e6;
    c.layer_norm_epsilon = 1e-6;
    return c;
  }
  if (name == "llama-3.2-1b") { // meta-llama/Llama-3.2-1B
    auto c = llama("llama", 16, 32, 8, 2048, 8192, 128256);
    c.rope_theta = 500000.0;
    c.rope_type = "llama3";
    c.rope_factor = 32.0;
    c.rope_original_max = 8192;
    return c;
  }
  return error{errc::bad_argument, "unknown model preset '" + name + "' (known: "
                                     + model_preset_names() + ")"};
}

std::optional<error> decoder_config::check() const {
  auto bad = [](const std::string& what) { return error{errc::malformed, what}; };
  if (family != "gpt2" && family != "opt" && family != "llama")
    return bad("model family '" + family + "' is not one of gpt2, opt, llama");
  for (auto [key, v] : {std::pair{"n_layer", n_layer}, {"n_head", n_head}, {"n_embd", n_embd},
                        {"n_positions", n_positions}, {"vocab_size", vocab_size}})
    if (v < 1)
      return bad(std::string("'") + key + "' must be a positive integer");
  if (head_dim_set == 0 && n_embd % n_head != 0)
    return bad("the width " + std::to_string(n_embd) + " is not divisible by the "
               + std::to_string(n_head) + " heads");
  if (head_dim() % 2 != 0 && family == "llama")
    return bad("rotary positions need an even head_dim (" + std::to_string(head_dim()) + ")");
  if (n_kv_head < 0 || n_head % kv_heads() != 0)
    return bad("the " + std::to_string(n_head) + " heads are not a multiple of the "
               + std::to_string(kv_heads()) + " key/value heads");
  if (family != "llama" && (kv_heads() != n_head || head_dim() * n_head != n_embd))
    return bad("grouped-query attention and a free head_dim are for the llama family only");
  if (ffn_dim < 0 || embed_dim < 0)
    return bad("ffn_dim and word_embed_proj_dim must not be negative");
  if (rope_type != "default" && rope_type != "linear" && rope_type != "llama3")
    return bad("rope_scaling type '" + rope_type + "' is not supported (linear, llama3)");
  if (!(rope_theta > 0) || !(rope_factor > 0) || !(layer_norm_epsilon > 0))
    return bad("rope_theta, the rope factor and the norm epsilon must be positive");
  if (family != "llama" && !tie_word_embeddings)
    return bad("an untied head is for the llama family only");
  return std::nullopt;
}

namespace {

/// The value masked scores get: the lowest float32 as HF uses, or the
/// lowest of bfloat16 / float16 when autocast made the scores that (the
/// float32 value does not fit them).
double masked_score(torch::ScalarType t) {
  if (t == torch::kBFloat16)
    return static_cast<double>(std::numeric_limits<c10::BFloat16>::lowest());
  if (t == torch::kHalf)
    return static_cast<double>(std::numeric_limits<c10::Half>::lowest());
  return std::numeric_limits<float>::lowest();
}

/// Attention of q over a prompt prefix and causally over the tokens: q (B, H,
/// T, hd), k and v (B, KV, T, hd), prefix (2, KV, P, hd) or undefined ->
/// (B, T, H hd). The prefix is written once per KV head; a group of H / KV
/// query heads shares it, as it shares the tokens' keys and values. Scores
/// are divided by sqrt(hd), masked scores filled with the dtype's lowest
/// value as HF does (after softmax both are 0).
torch::Tensor prefix_attention(torch::Tensor q, torch::Tensor k, torch::Tensor v,
                               const torch::Tensor& prefix) {
  auto B = q.size(0), H = q.size(1), T = q.size(2), hd = q.size(3), KV = k.size(1);
  std::int64_t P = 0;
  if (prefix.defined() && prefix.size(2) > 0) {
    P = prefix.size(2);
    k = torch::cat({prefix[0].unsqueeze(0).expand({B, KV, P, hd}), k}, 2); // (B, KV, P+T, hd)
    v = torch::cat({prefix[1].unsqueeze(0).expand({B, KV, P, hd}), v}, 2); // (B, KV, P+T, hd)
  }
  if (KV != H) { // repeat each KV head for its H / KV query heads (HF's repeat_kv)
    auto S = k.size(2), rep = H / KV;
    k = k.unsqueeze(2).expand({B, KV, rep, S, hd}).reshape({B, H, S, hd});
    v = v.unsqueeze(2).expand({B, KV, rep, S, hd}).reshape({B, H, S, hd});
  }
  auto att = torch::matmul(q, k.transpose(-2, -1))
             / std::sqrt(static_cast<double>(hd)); // (B, H, T, P+T)
  auto allowed = torch::ones({T, P + T}, torch::dtype(torch::kBool).device(q.device()))
                   .tril(P); // (T, P+T)
  att = att.masked_fill(allowed.logical_not(), masked_score(att.scalar_type()));
  att = torch::softmax(att, -1, at_least_float(att)); // float32 under autocast too, as HF does
  auto y = torch::matmul(att, v);                       // (B, H, T, hd)
  return y.transpose(1, 2).contiguous().view({B, T, H * hd}); // (B, T, H hd)
}

/// HF's rotate_half: (x1, x2) -> (-x2, x1) over the last dimension's halves.
torch::Tensor rotate_half(const torch::Tensor& x) {
  auto halves = x.chunk(2, -1);
  return torch::cat({-halves[1], halves[0]}, -1);
}

/// x (B, heads, T, hd) rotated by positions 0..T-1.
torch::Tensor apply_rope(const torch::Tensor& x, const rotary& r) {
  return x * r.cos + rotate_half(x) * r.sin;
}

/// Named linear maps under one module ("self_attn", "mlp").
class linears_impl : public torch::nn::Module {
public:
  torch::nn::Linear add(const std::string& name, std::int64_t in, std::int64_t out, bool bias) {
    return register_module(name, torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(bias)));
  }
};
TORCH_MODULE_IMPL(linears, linears_impl);

/// LLaMA's RMSNorm: x / sqrt(mean(x^2) + eps) * weight.
class rms_norm_impl : public torch::nn::Module {
public:
  rms_norm_impl(std::int64_t C, double eps) : eps_(eps) {
    weight = register_parameter("weight", torch::ones({C}));
  }
  torch::Tensor forward(const torch::Tensor& x) { // (..., C) -> (..., C)
    // in float32 whatever autocast made x, as LlamaRMSNorm does
    auto h = x.to(torch::kFloat);
    return (h * torch::rsqrt(h.pow(2).mean(-1, true) + eps_)).to(x.scalar_type()) * weight;
  }
  torch::Tensor weight;

private:
  double eps_;
};
TORCH_MODULE_IMPL(rms_norm, rms_norm_impl);

/// OPT's decoder layer.
class opt_block_impl : public layer_impl {
public:
  explicit opt_block_impl(const decoder_config& c)
    : H_(c.n_head), hd_(c.head_dim()), pre_norm_(c.pre_norm) {
    auto C = c.n_embd;
    auto attn = register_module("self_attn", linears());
    q_ = attn->add("q_proj", C, C, true);
    k_ = attn->add("k_proj", C, C, true);
    v_ = attn->add("v_proj", C, C, true);
    o_ = attn->add("out_proj", C, C, true);
    auto ln = torch::nn::LayerNormOptions({C}).eps(c.layer_norm_epsilon);
    ln_attn_ = register_module("self_attn_layer_norm", torch::nn::LayerNorm(ln));
    fc1_ = register_module("fc1", torch::nn::Linear(C, c.inner()));
    fc2_ = register_module("fc2", torch::nn::Linear(c.inner(), C));
    ln_ffn_ = register_module("final_layer_norm", torch::nn::LayerNorm(ln));
  }

  torch::Tensor run(const torch::Tensor& x, const torch::Tensor& prefix,
                    const rotary&) override {
    auto B = x.size(0), T = x.size(1);
    auto h = pre_norm_ ? ln_attn_(x) : x;                       // (B, T, C)
    auto q = q_(h).view({B, T, H_, hd_}).transpose(1, 2);       // (B, H, T, hd)
    auto k = k_(h).view({B, T, H_, hd_}).transpose(1, 2);       // (B, H, T, hd)
    auto v = v_(h).view({B, T, H_, hd_}).transpose(1, 2);       // (B, H, T, hd)
    h = x + o_(prefix_attention(q, k, v, prefix));              // (B, T, C)
    if (!pre_norm_)
      h = ln_attn_(h);
    auto f = fc2_(torch::relu(fc1_(pre_norm_ ? ln_ffn_(h) : h))); // (B, T, F) inside
    h = h + f;
    return pre_norm_ ? h : ln_ffn_(h);
  }

private:
  std::int64_t H_, hd_;
  bool pre_norm_;
  torch::nn::Linear q_{nullptr}, k_{nullptr}, v_{nullptr}, o_{nullptr}, fc1_{nullptr},
    fc2_{nullptr};
  torch::nn::LayerNorm ln_attn_{nullptr}, ln_ffn_{nullptr};
};

/// LLaMA's decoder layer (also mistral's and qwen2's).
class llama_block_impl : public layer_impl {
public:
  explicit llama_block_impl(const decoder_config& c)
    : H_(c.n_head), KV_(c.kv_heads()), hd_(c.head_dim()) {
    auto C = c.n_embd;
    ln_attn_ = register_module("input_layernorm", rms_norm(C, c.layer_norm_epsilon));
    auto attn = register_module("self_attn", linears());
    q_ = attn->add("q_proj", C, H_ * hd_, c.qkv_bias);
    k_ = attn->add("k_proj", C, KV_ * hd_, c.qkv_bias);
    v_ = attn->add("v_proj", C, KV_ * hd_, c.qkv_bias);
    o_ = attn->add("o_proj", H_ * hd_, C, c.o_bias);
    auto mlp = register_module("mlp", linears());
    gate_ = mlp->add("gate_proj", C, c.inner(), false);
    up_ = mlp->add("up_proj", C, c.inner(), false);
    down_ = mlp->add("down_proj", c.inner(), C, false);
    ln_ffn_ = register_module("post_attention_layernorm", rms_norm(C, c.layer_norm_epsilon));
  }

  torch::Tensor run(const torch::Tensor& x, const torch::Tensor& prefix,
                    const rotary& rope) override {
    auto B = x.size(0), T = x.size(1);
    auto h = ln_attn_(x);                                                 // (B, T, C)
    auto q = apply_rope(q_(h).view({B, T, H_, hd_}).transpose(1, 2), rope);  // (B, H, T, hd)
    auto k = apply_rope(k_(h).view({B, T, KV_, hd_}).transpose(1, 2), rope); // (B, KV, T, hd)
    auto v = v_(h).view({B, T, KV_, hd_}).transpose(1, 2);                  // (B, KV, T, hd)
    h = x + o_(prefix_attention(q, k, v, prefix));                          // (B, T, C)
    auto n = ln_ffn_(h);
    return h + down_(torch::silu(gate_(n)) * up_(n)); // (B, T, F) inside
  }

private:
  std::int64_t H_, KV_, hd_;
  rms_norm ln_attn_{nullptr}, ln_ffn_{nullptr};
  torch::nn::Linear q_{nullptr}, k_{nullptr}, v_{nullptr}, o_{nullptr}, gate_{nullptr},
    up_{nullptr}, down_{nullptr};
};

std::shared_ptr<layer_impl> make_block(const decoder_config& c) {
  if (c.family == "opt")
    return std::make_shared<opt_block_impl>(c);
  if (c.family == "llama")
    return std::make_shared<llama_block_impl>(c);
  return std::make_shared<block_impl>(c);
}

/// Rotary inverse frequencies (hd / 2) as HF's rope initialisers compute them.
torch::Tensor inverse_frequencies(const decoder_config& c) {
  auto hd = c.head_dim();
  auto inv = 1.0 / torch::pow(c.rope_theta, torch::arange(0, hd, 2, torch::kDouble)
                                              / static_cast<double>(hd)); // (hd/2)
  if (c.rope_type == "linear")
    inv = inv / c.rope_factor;
  if (c.rope_type == "llama3") {
    auto old = static_cast<double>(c.rope_original_max);
    auto low_wavelen = old / c.rope_low_freq_factor;
    auto high_wavelen = old / c.rope_high_freq_factor;
    auto wavelen = 2.0 * M_PI / inv;
    auto scaled = torch::where(wavelen > low_wavelen, inv / c.rope_factor, inv);
    auto smooth = (old / wavelen - c.rope_low_freq_factor)
                  / (c.rope_high_freq_factor - c.rope_low_freq_factor);
    auto smoothed = (1 - smooth) * scaled / c.rope_factor + smooth * scaled;
    auto medium = (wavelen >= high_wavelen).logical_and(wavelen <= low_wavelen);
    inv = torch::where(medium, smoothed, scaled);
  }
  return inv.to(torch::kFloat);
}

} // namespace

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

attention_impl::attention_impl(const decoder_config& cfg)
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
  att = att.masked_fill(allowed.logical_not(), masked_score(att.scalar_type()));
  att = torch::softmax(att, -1, at_least_float(att)); // float32 under autocast too, as HF does
  auto y = torch::matmul(att, v);                     // (B, H, T, hd)
  y = y.transpose(1, 2).contiguous().view({B, T, C}); // (B, T, C)
  return c_proj_(y);
}

mlp_impl::mlp_impl(const decoder_config& cfg) {
  c_fc_ = register_module("c_fc", conv1d(cfg.n_embd, cfg.inner()));
  c_proj_ = register_module("c_proj", conv1d(cfg.inner(), cfg.n_embd));
}

torch::Tensor mlp_impl::forward(const torch::Tensor& x) {
  return c_proj_(torch::gelu(c_fc_(x), "tanh")); // (B, T, 4C) inside
}

block_impl::block_impl(const decoder_config& cfg) {
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

torch::Tensor block_impl::run(const torch::Tensor& x, const torch::Tensor& prefix,
                              const rotary&) {
  return forward(x, prefix);
}

// -- the model --------------------------------------------------------------------------

const char* gpt_impl::blocks_name() const { return cfg_.family == "gpt2" ? "h" : "layers"; }

void gpt_impl::build(std::int64_t n_blocks) {
  if (auto bad = cfg_.check())
    throw std::invalid_argument(bad->text);
  auto C = cfg_.n_embd;
  if (cfg_.family == "gpt2") {
    wte_ = register_module("wte", torch::nn::Embedding(cfg_.vocab_size, C));
    wpe_ = register_module("wpe", torch::nn::Embedding(cfg_.n_positions, C));
  } else {
    wte_ = register_module("embed_tokens",
                           torch::nn::Embedding(cfg_.vocab_size, cfg_.embed_width()));
    if (cfg_.family == "opt")
      wpe_ = register_module("embed_positions",
                             torch::nn::Embedding(cfg_.n_positions + cfg_.position_offset(), C));
    if (cfg_.embed_width() != C) {
      auto in = torch::nn::LinearOptions(cfg_.embed_width(), C).bias(false);
      project_in_ = register_module("project_in", torch::nn::Linear(in));
      auto out = torch::nn::LinearOptions(C, cfg_.embed_width()).bias(false);
      project_out_ = register_module("project_out", torch::nn::Linear(out));
    }
  }
  blocks_ = register_module(blocks_name(), torch::nn::ModuleList());
  for (std::int64_t b = 0; b < n_blocks; ++b)
    blocks_->push_back(make_block(cfg_));
  auto ln = torch::nn::LayerNormOptions({C}).eps(cfg_.layer_norm_epsilon);
  if (cfg_.family == "gpt2")
    ln_f_ = register_module("ln_f", torch::nn::LayerNorm(ln));
  else if (cfg_.family == "opt" && cfg_.final_norm)
    ln_f_ = register_module("final_layer_norm", torch::nn::LayerNorm(ln));
  else if (cfg_.family == "llama")
    rms_f_ = register_module("norm", std::make_shared<rms_norm_impl>(C, cfg_.layer_norm_epsilon));
  if (!cfg_.tie_word_embeddings)
    lm_head_ = register_module(
      "lm_head", torch::nn::Linear(torch::nn::LinearOptions(C, cfg_.vocab_size).bias(false)));
  if (cfg_.family == "llama")
    inv_freq_ = inverse_frequencies(cfg_);
}

gpt_impl::gpt_impl(const decoder_config& cfg, std::uint64_t seed) : cfg_(cfg) {
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
    if (p.dim() == 1) { // norms at (1, 0), biases 0
      if (ends_with("bias"))
        p.zero_();
      else
        p.fill_(1.0);
    } else if (cfg.family == "gpt2" && ends_with("c_proj.weight")) {
      p.normal_(0.0, proj_std, gen);
    } else {
      p.normal_(0.0, std, gen);
    }
  }
}

gpt_impl::gpt_impl(const decoder_config& cfg, std::int64_t n_blocks,
                   std::vector<std::int64_t> layer_block)
  : cfg_(cfg), layer_block_(std::move(layer_block)) {
  build(n_blocks);
}

rotary gpt_impl::rope(std::int64_t T, const torch::Device& device) {
  if (cfg_.family != "llama")
    return {};
  auto pos = torch::arange(T, torch::dtype(torch::kFloat).device(device));   // (T)
  auto freqs = torch::outer(pos, inv_freq_.to(device));                      // (T, hd/2)
  auto emb = torch::cat({freqs, freqs}, -1);                                 // (T, hd)
  return {emb.cos(), emb.sin()};
}

torch::Tensor gpt_impl::hidden(const torch::Tensor& tokens, const torch::Tensor& prefix) {
  // Batches are built in host memory; they follow the model to its device
  // (a no-op on the CPU).
  auto idx = tokens.to(wte_->weight.device());
  auto T = idx.size(1);
  TORCH_CHECK(T <= max_tokens(), "sequence of ", T, " tokens exceeds the model's ",
              max_tokens(), " positions");
  TORCH_CHECK(!prefix.defined() || prefix.size(0) == depth(), "prefix has ",
              prefix.size(0), " layers, the model runs ", depth());
  auto x = wte_(idx); // (B, T, C) or (B, T, word_embed_proj_dim)
  if (project_in_)
    x = project_in_(x); // (B, T, C)
  if (wpe_) {
    auto pos = torch::arange(cfg_.position_offset(), T + cfg_.position_offset(),
                             torch::dtype(torch::kLong).device(idx.device())); // (T)
    x = x + wpe_(pos).unsqueeze(0);                                          // (B, T, C)
  }
  auto r = rope(T, idx.device());
  for (std::int64_t l = 0; l < depth(); ++l) {
    auto layer_prefix = prefix.defined() ? prefix[l] : torch::Tensor(); // (2, KV, P, hd)
    x = blocks_->ptr<layer_impl>(static_cast<std::size_t>(layer_block_[static_cast<std::size_t>(l)]))
          ->run(x, layer_prefix, r);
  }
  if (ln_f_)
    x = ln_f_(x);
  if (rms_f_)
    x = std::static_pointer_cast<rms_norm_impl>(rms_f_)->forward(x);
  if (project_out_)
    x = project_out_(x); // (B, T, word_embed_proj_dim)
  return x;
}

torch::Tensor gpt_impl::head(const torch::Tensor& h) {
  if (lm_head_)
    return lm_head_(h);                      // (B, T, V)
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
