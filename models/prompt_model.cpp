#include "models/prompt_model.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "models/gpt.hpp"
#include "runtime/rng.hpp"

namespace fedsp {

namespace {

using models::gpt;
using models::gpt_config;

constexpr std::int64_t ignore_index = -100;
constexpr std::size_t probe_size = 32;  // examples in the before/after probe
constexpr std::size_t eval_batch = 64;  // sequences per scoring forward pass

/// Context and one choice as byte tokens; the context is cut from the left so
/// the whole choice fits in n_ctx (the answer is what is scored).
struct encoded_pair {
  std::vector<std::int64_t> tokens;
  std::int64_t answer_start = 0; // index of the first choice token
};

encoded_pair encode_pair(const std::string& context, const std::string& choice,
                         std::int64_t n_ctx) {
  std::string c = choice.substr(0, static_cast<std::size_t>(n_ctx - 1));
  std::string ctx = context.empty() ? std::string("\n") : context;
  auto keep = static_cast<std::size_t>(n_ctx) - c.size();
  if (ctx.size() > keep)
    ctx = ctx.substr(ctx.size() - keep);
  encoded_pair out;
  out.tokens.reserve(ctx.size() + c.size());
  for (unsigned char b : ctx)
    out.tokens.push_back(b);
  out.answer_start = static_cast<std::int64_t>(out.tokens.size());
  for (unsigned char b : c)
    out.tokens.push_back(b);
  return out;
}

/// idx (B, T) right-padded with 0; targets (B, T): the next token where it is
/// an answer token, ignore_index elsewhere (logits at i predict token i+1).
std::pair<torch::Tensor, torch::Tensor>
make_batch(const std::vector<encoded_pair>& pairs) {
  std::int64_t B = static_cast<std::int64_t>(pairs.size()), T = 0;
  for (auto& p : pairs)
    T = std::max<std::int64_t>(T, static_cast<std::int64_t>(p.tokens.size()));
  auto idx = torch::zeros({B, T}, torch::kLong);                  // (B, T)
  auto tgt = torch::full({B, T}, ignore_index, torch::kLong);     // (B, T)
  auto ia = idx.accessor<std::int64_t, 2>();
  auto ta = tgt.accessor<std::int64_t, 2>();
  for (std::int64_t b = 0; b < B; ++b) {
    auto& p = pairs[static_cast<std::size_t>(b)];
    auto n = static_cast<std::int64_t>(p.tokens.size());
    for (std::int64_t i = 0; i < n; ++i)
      ia[b][i] = p.tokens[static_cast<std::size_t>(i)];
    for (std::int64_t i = p.answer_start - 1; i + 1 < n; ++i)
      ta[b][i] = p.tokens[static_cast<std::size_t>(i + 1)];
  }
  return {idx, tgt};
}

/// Mean answer-token cross-entropy. logits (B, T, V), targets (B, T).
torch::Tensor answer_loss(const torch::Tensor& logits, const torch::Tensor& targets) {
  auto V = logits.size(2);
  return torch::nn::functional::cross_entropy(
    logits.reshape({-1, V}), targets.reshape({-1}),
    torch::nn::functional::CrossEntropyFuncOptions().ignore_index(ignore_index));
}

} // namespace

struct prompt_model::impl {
  model_params params;
  gpt_config cfg;
  mutable gpt net{nullptr};

  std::vector<std::int64_t> prefix_shape() const {
    return {cfg.n_layer, 2, cfg.n_head,
            static_cast<std::int64_t>(params.prompt_length), cfg.n_embd / cfg.n_head};
  }

  result<torch::Tensor> to_tensor(const prompt_set& ps) const {
    prompt_set expected;
    tensor_buffer t{"prefix", {}, {}};
    for (auto d : prefix_shape())
      t.shape.push_back(static_cast<std::uint32_t>(d));
    expected.tensors.push_back(t);
    if (auto err = check_layout(expected, ps))
      return *err;
    if (auto err = check_values(ps))
      return *err;
    auto& data = ps.tensors[0].data;
    return torch::from_blob(const_cast<float*>(data.data()), prefix_shape(),
                            torch::kFloat)
      .clone(); // (L, 2, H, P, hd)
  }

  static prompt_set to_prompts(const torch::Tensor& prefix, std::uint64_t version) {
    auto c = prefix.detach().contiguous().to(torch::kFloat);
    tensor_buffer t{"prefix", {}, {}};
    for (auto d : c.sizes())
      t.shape.push_back(static_cast<std::uint32_t>(d));
    t.data.resize(static_cast<std::size_t>(c.numel()));
    std::memcpy(t.data.data(), c.data_ptr<float>(), t.data.size() * sizeof(float));
    return prompt_set{version, {std::move(t)}};
  }

  std::vector<encoded_pair> answers(const std::vector<mc_example>& data,
                                    const std::vector<std::size_t>& which) const {
    std::vector<encoded_pair> out;
    out.reserve(which.size());
    for (auto i : which) {
      auto& ex = data[i];
      out.push_back(encode_pair(ex.context, ex.choices[static_cast<std::size_t>(ex.label)],
                                cfg.n_ctx));
    }
    return out;
  }

  double probe_loss(const torch::Tensor& prefix, const std::vector<mc_example>& data,
                    const std::vector<std::size_t>& probe) const {
    torch::NoGradGuard no_grad;
    auto [idx, tgt] = make_batch(answers(data, probe));
    return answer_loss(net->forward(idx, prefix), tgt).item<double>();
  }
};

prompt_model::prompt_model(const model_params& params, std::uint64_t seed)
  : impl_(std::make_unique<impl>()) {
  impl_->params = params;
  impl_->cfg.n_layer = params.layers;
  impl_->cfg.n_embd = params.width;
  impl_->cfg.n_head = params.heads;
  impl_->cfg.n_ctx = params.context;
  impl_->cfg.init_std = params.init_std;
  impl_->net = gpt(impl_->cfg, seed);
  for (auto& p : impl_->net->parameters())
    p.set_requires_grad(false); // the base is frozen: only prompts train
  impl_->net->eval();
}

prompt_model::~prompt_model() = default;
prompt_model::prompt_model(prompt_model&&) noexcept = default;
prompt_model& prompt_model::operator=(prompt_model&&) noexcept = default;

prompt_set prompt_model::layout() const {
  tensor_buffer t{"prefix", {}, {}};
  for (auto d : impl_->prefix_shape())
    t.shape.push_back(static_cast<std::uint32_t>(d));
  return prompt_set{0, {std::move(t)}};
}

prompt_set prompt_model::initial_prompts(std::uint64_t seed) const {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto prefix = torch::empty(impl_->prefix_shape(), torch::kFloat);
  prefix.normal_(0.0, impl_->params.prompt_init_std, gen);
  return impl::to_prompts(prefix, 0);
}

result<train_report> prompt_model::train(const prompt_set& prompts,
                                         const std::vector<mc_example>& data,
                                         const train_params& tp) const {
  if (data.empty())
    return error{errc::empty_input, "no training examples"};
  if (tp.steps == 0 || tp.batch_size == 0 || !std::isfinite(tp.learning_rate)
      || tp.learning_rate <= 0)
    return error{errc::bad_argument, "train needs steps > 0, batch_size > 0 and "
                                     "a finite learning rate > 0"};
  auto start = impl_->to_tensor(prompts);
  if (!start)
    return start.err();
  try {
    auto prefix = start.value().set_requires_grad(true); // (L, 2, H, P, hd)
    torch::optim::Adam opt({prefix}, torch::optim::AdamOptions(tp.learning_rate));
    std::vector<std::size_t> probe;
    for (std::size_t i = 0; i < std::min(probe_size, data.size()); ++i)
      probe.push_back(i);
    train_report rep;
    rep.num_samples = data.size();
    rep.loss_before = impl_->probe_loss(prefix, data, probe);
    rng r(tp.seed);
    for (std::uint32_t step = 0; step < tp.steps; ++step) {
      std::vector<std::size_t> pick(tp.batch_size);
      for (auto& i : pick)
        i = uniform_below(r, data.size());
      auto [idx, tgt] = make_batch(impl_->answers(data, pick));
      opt.zero_grad();
      auto loss = answer_loss(impl_->net->forward(idx, prefix), tgt);
      loss.backward();
      opt.step();
      double l = loss.item<double>();
      if (step == 0)
        rep.train_loss_first = l;
      rep.train_loss_last = l;
    }
    rep.loss_after = impl_->probe_loss(prefix, data, probe);
    rep.prompts = impl::to_prompts(prefix, prompts.version);
    if (auto err = check_values(rep.prompts))
      return error{errc::non_finite, "training diverged: " + err->text};
    return rep;
  } catch (const c10::Error& e) {
    return error{errc::unknown, std::string("torch: ") + e.what_without_backtrace()};
  }
}

result<eval_report> prompt_model::evaluate(const prompt_set& prompts,
                                           const std::vector<mc_example>& data) const {
  if (data.empty())
    return error{errc::empty_input, "no evaluation examples"};
  auto prefix = impl_->to_tensor(prompts);
  if (!prefix)
    return prefix.err();
  try {
    torch::NoGradGuard no_grad;
    // One row per (example, choice): summed log-likelihood of the choice.
    struct row { std::size_t example; std::size_t choice; };
    std::vector<row> rows;
    std::vector<encoded_pair> pairs;
    for (std::size_t e = 0; e < data.size(); ++e)
      for (std::size_t c = 0; c < data[e].choices.size(); ++c) {
        rows.push_back({e, c});
        pairs.push_back(encode_pair(data[e].context, data[e].choices[c], impl_->cfg.n_ctx));
      }
    std::vector<double> loglik(rows.size()), ntok(rows.size());
    for (std::size_t s = 0; s < pairs.size(); s += eval_batch) {
      auto e = std::min(pairs.size(), s + eval_batch);
      std::vector<encoded_pair> chunk(pairs.begin() + static_cast<std::ptrdiff_t>(s),
                                      pairs.begin() + static_cast<std::ptrdiff_t>(e));
      auto [idx, tgt] = make_batch(chunk);
      auto logp = torch::log_softmax(impl_->net->forward(idx, prefix.value()), -1); // (B, T, V)
      auto mask = tgt.ne(ignore_index);                                             // (B, T)
      auto tok = logp.gather(2, tgt.clamp_min(0).unsqueeze(2)).squeeze(2);          // (B, T)
      auto sums = (tok * mask).sum(1);                                              // (B)
      auto counts = mask.sum(1);                                                    // (B)
      for (std::size_t i = s; i < e; ++i) {
        loglik[i] = sums[static_cast<std::int64_t>(i - s)].item<double>();
        ntok[i] = counts[static_cast<std::int64_t>(i - s)].item<double>();
      }
    }
    eval_report rep;
    rep.num_examples = data.size();
    std::size_t r = 0;
    double hits = 0, hits_norm = 0, nll = 0;
    for (std::size_t ex = 0; ex < data.size(); ++ex) {
      std::size_t best = 0, best_norm = 0;
      double best_ll = -INFINITY, best_ll_norm = -INFINITY;
      for (std::size_t c = 0; c < data[ex].choices.size(); ++c, ++r) {
        double ll = loglik[r];
        double norm = ll / static_cast<double>(data[ex].choices[c].size());
        if (ll > best_ll)
          best_ll = ll, best = c;
        if (norm > best_ll_norm)
          best_ll_norm = norm, best_norm = c;
        if (static_cast<int>(c) == data[ex].label)
          nll += -ll / std::max(1.0, ntok[r]);
      }
      hits += best == static_cast<std::size_t>(data[ex].label);
      hits_norm += best_norm == static_cast<std::size_t>(data[ex].label);
    }
    auto n = static_cast<double>(data.size());
    rep.acc = hits / n;
    rep.acc_norm = hits_norm / n;
    rep.loss = nll / n;
    return rep;
  } catch (const c10::Error& e) {
    return error{errc::unknown, std::string("torch: ") + e.what_without_backtrace()};
  }
}

std::uint64_t prompt_model::num_parameters() const {
  std::uint64_t n = 0;
  for (auto& p : impl_->net->parameters())
    n += static_cast<std::uint64_t>(p.numel());
  return n;
}

void set_compute_threads(int n) {
  if (n > 0)
    torch::set_num_threads(n);
}

} // namespace fedsp
