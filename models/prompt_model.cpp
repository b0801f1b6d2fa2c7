#include "models/prompt_model.hpp"

#include <cmath>
#include <cstring>

#include "models/gpt.hpp"
#include "models/scoring.hpp"
#include "models/soft_prompt.hpp"
#include "models/tokenizer.hpp"
#include "runtime/rng.hpp"

namespace fedsp {

using namespace fedsp::models;

struct prompt_model::impl {
  model_params params;
  gpt2_config cfg;
  gpt net{nullptr};
  byte_tokenizer tok;

  soft_prompt_config prompt_config() const {
    soft_prompt_config c;
    c.depth = cfg.n_layer;
    c.n_head = cfg.n_head;
    c.head_dim = cfg.head_dim();
    c.length = params.prompt_length;
    c.init_std = params.prompt_init_std;
    return c;
  }

  /// A prompt module holding `ps` (validated).
  result<soft_prompt> load(const prompt_set& ps) const {
    soft_prompt p(prompt_config(), 0);
    if (auto err = p->load(ps))
      return *err;
    return p;
  }
};

prompt_model::prompt_model(const model_params& params, std::uint64_t seed)
  : impl_(std::make_unique<impl>()) {
  impl_->params = params;
  impl_->cfg.n_layer = params.layers;
  impl_->cfg.n_embd = params.width;
  impl_->cfg.n_head = params.heads;
  impl_->cfg.n_positions = params.context;
  impl_->cfg.vocab_size = 256;
  impl_->cfg.initializer_range = params.init_std;
  impl_->net = gpt(impl_->cfg, seed);
  impl_->net->set_trainable(false); // the base is frozen: only prompts train
  impl_->net->eval();
}

prompt_model::~prompt_model() = default;
prompt_model::prompt_model(prompt_model&&) noexcept = default;
prompt_model& prompt_model::operator=(prompt_model&&) noexcept = default;

prompt_set prompt_model::layout() const {
  return soft_prompt(impl_->prompt_config(), 0)->layout();
}

prompt_set prompt_model::initial_prompts(std::uint64_t seed) const {
  return soft_prompt(impl_->prompt_config(), seed)->to_prompts(0);
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
  auto prompt = impl_->load(prompts);
  if (!prompt)
    return prompt.err();
  try {
    auto& p = prompt.value();
    auto examples = encode_examples(impl_->tok, data, impl_->cfg.n_positions);
    std::vector<const encoded_sequence*> probe;
    for (std::size_t i = 0; i < std::min<std::size_t>(32, examples.size()); ++i)
      probe.push_back(&examples[i].choices[static_cast<std::size_t>(examples[i].label)]);
    auto probe_loss = [&] {
      torch::NoGradGuard no_grad;
      auto [idx, tgt] = make_batch(probe);
      return answer_loss(impl_->net->forward(idx, p->materialize()), tgt).item<double>();
    };
    train_report rep;
    rep.num_samples = data.size();
    rep.loss_before = probe_loss();
    torch::optim::Adam opt(p->parameters(), torch::optim::AdamOptions(tp.learning_rate));
    rng r(tp.seed);
    p->train();
    for (std::uint32_t step = 0; step < tp.steps; ++step) {
      std::vector<const encoded_sequence*> batch;
      for (std::uint32_t b = 0; b < tp.batch_size; ++b) {
        auto& ex = examples[uniform_below(r, examples.size())];
        batch.push_back(&ex.choices[static_cast<std::size_t>(ex.label)]);
      }
      auto [idx, tgt] = make_batch(batch);
      opt.zero_grad();
      auto loss = answer_loss(impl_->net->forward(idx, p->forward()), tgt);
      loss.backward();
      opt.step();
      double l = loss.item<double>();
      if (step == 0)
        rep.train_loss_first = l;
      rep.train_loss_last = l;
    }
    p->eval();
    rep.loss_after = probe_loss();
    rep.prompts = p->to_prompts(prompts.version);
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
  auto prompt = impl_->load(prompts);
  if (!prompt)
    return prompt.err();
  try {
    auto examples = encode_examples(impl_->tok, data, impl_->cfg.n_positions);
    auto s = score(impl_->net, prompt.value()->materialize(), examples, 64);
    return eval_report{s.acc, s.acc_norm, s.loss, s.n};
  } catch (const c10::Error& e) {
    return error{errc::unknown, std::string("torch: ") + e.what_without_backtrace()};
  }
}

std::uint64_t prompt_model::num_parameters() const {
  return static_cast<std::uint64_t>(impl_->net->num_parameters());
}

void set_compute_threads(int n) {
  if (n > 0)
    torch::set_num_threads(n);
}

} // namespace fedsp
