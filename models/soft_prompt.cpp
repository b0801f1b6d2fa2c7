#include "models/soft_prompt.hpp"

#include <cstring>

#include <ATen/CPUGeneratorImpl.h>

namespace fedsp::models {

soft_prompt_impl::soft_prompt_impl(const soft_prompt_config& cfg, std::uint64_t seed)
  : cfg_(cfg) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  torch::NoGradGuard no_grad;
  auto C = cfg.n_head * cfg.head_dim;
  if (!cfg.reparameterize) {
    prefix_ = register_parameter(
      "prefix", torch::empty({cfg.depth, 2, cfg.n_head, cfg.length, cfg.head_dim}));
    prefix_.normal_(0.0, cfg.init_std, gen);
    return;
  }
  embedding_ = register_module("embedding", torch::nn::Embedding(cfg.length, C));
  down_ = register_module("down", torch::nn::Linear(C, cfg.hidden));
  up_ = register_module("up", torch::nn::Linear(cfg.hidden, cfg.depth * 2 * C));
  for (auto& p : parameters())
    p.normal_(0.0, 0.02, gen);
  embedding_->weight.normal_(0.0, 1.0, gen);
}

torch::Tensor soft_prompt_impl::forward() {
  torch::Tensor prefix;
  if (!cfg_.reparameterize) {
    prefix = prefix_; // (L, 2, H, P, hd)
  } else {
    auto L = cfg_.depth, H = cfg_.n_head, P = cfg_.length, hd = cfg_.head_dim;
    auto e = embedding_->weight;                        // (P, C)
    auto flat = up_(torch::tanh(down_(e)));             // (P, L*2*C)
    prefix = flat.view({P, L, 2, H, hd}).permute({1, 2, 3, 0, 4}); // (L, 2, H, P, hd)
  }
  if (cfg_.dropout > 0 && is_training())
    prefix = torch::dropout(prefix, cfg_.dropout, true);
  return prefix;
}

torch::Tensor soft_prompt_impl::materialize() {
  torch::NoGradGuard no_grad;
  bool was = is_training();
  eval();
  auto p = forward().contiguous().clone();
  train(was);
  return p;
}

prompt_set soft_prompt_impl::to_prompts(std::uint64_t version) {
  prompt_set ps;
  ps.version = version;
  for (auto& item : named_parameters()) {
    auto t = item.value().detach().to(torch::kCPU, torch::kFloat).contiguous();
    tensor_buffer b{item.key(), {}, {}};
    for (auto d : t.sizes())
      b.shape.push_back(static_cast<std::uint32_t>(d));
    b.data.resize(static_cast<std::size_t>(t.numel()));
    std::memcpy(b.data.data(), t.data_ptr<float>(), b.data.size() * sizeof(float));
    ps.tensors.push_back(std::move(b));
  }
  return ps;
}

prompt_set soft_prompt_impl::layout() {
  auto ps = to_prompts(0);
  for (auto& t : ps.tensors)
    t.data.clear();
  return ps;
}

std::optional<error> soft_prompt_impl::load(const prompt_set& ps) {
  if (auto err = check_layout(layout(), ps))
    return err;
  if (auto err = check_values(ps))
    return err;
  torch::NoGradGuard no_grad;
  std::size_t i = 0;
  for (auto& item : named_parameters()) {
    auto& src = ps.tensors[i++];
    item.value().copy_(torch::from_blob(const_cast<float*>(src.data.data()),
                                        item.value().sizes(), torch::kFloat));
  }
  return std::nullopt;
}

torch::Tensor remap_layers(const torch::Tensor& prefix, const std::vector<std::int64_t>& source) {
  auto index = torch::tensor(source, torch::kLong).to(prefix.device());
  return prefix.index_select(0, index); // (L_to, 2, H, P, hd)
}

} // namespace fedsp::models
