#include "models/trainer.hpp"

#include <sstream>

#include <cmath>

#include "models/torch_compat.hpp"
#include <ATen/CPUGeneratorImpl.h>
#include "runtime/rng.hpp"

namespace fedsp::models {

namespace {

constexpr std::size_t probe_size = 32; // examples in the before/after probe

std::int64_t warmup_steps(std::int64_t total, double fraction) {
  return static_cast<std::int64_t>(std::floor(static_cast<double>(total) * fraction));
}

/// The correct choice of `n` examples drawn with replacement.
std::vector<const encoded_sequence*> sample(const std::vector<encoded_example>& data,
                                            std::int64_t n, rng& r) {
  std::vector<const encoded_sequence*> out;
  for (std::int64_t i = 0; i < n; ++i) {
    auto& ex = data[uniform_below(r, data.size())];
    out.push_back(&ex.choices[static_cast<std::size_t>(ex.label)]);
  }
  return out;
}

std::vector<const encoded_sequence*> probe(const std::vector<encoded_example>& data) {
  std::vector<const encoded_sequence*> out;
  for (std::size_t i = 0; i < std::min(probe_size, data.size()); ++i)
    out.push_back(&data[i].choices[static_cast<std::size_t>(data[i].label)]);
  return out;
}

double probe_loss(gpt& model, const torch::Tensor& prefix,
                  const std::vector<const encoded_sequence*>& seqs) {
  torch::NoGradGuard no_grad;
  auto [idx, tgt] = make_batch(seqs);
  return answer_loss(model->forward(idx, prefix), tgt).item<double>();
}

/// Runs `steps` optimizer steps of `loss_of(batch)` with accumulation.
template <class LossFn>
stage_losses run_stage(optimizer_stage& stage, std::int64_t steps, std::int64_t batch,
                       std::int64_t accumulate, const std::vector<encoded_example>& data,
                       rng& r, LossFn&& loss_of) {
  stage_losses out;
  for (std::int64_t s = 0; s < steps; ++s) {
    double total = 0;
    for (std::int64_t a = 0; a < accumulate; ++a) {
      auto loss = loss_of(sample(data, batch, r)) / static_cast<double>(accumulate);
      stage.scaled(loss).backward();
      total += loss.template item<double>();
    }
    stage.step();
    if (s == 0)
      out.first = total;
    out.last = total;
  }
  return out;
}

std::optional<error> check_data(const std::vector<encoded_example>& data) {
  if (data.empty())
    return error{errc::empty_input, "no training examples"};
  return std::nullopt;
}

} // namespace

// -- schedule and stage ------------------------------------------------------------------

double lr_schedule::at(std::int64_t step) const {
  if (warmup > 0 && step < warmup)
    return base * static_cast<double>(step + 1) / static_cast<double>(warmup);
  auto rest = std::max<std::int64_t>(1, total - warmup);
  auto done = std::min(rest, step - warmup);
  return base * std::max(0.0, 1.0 - static_cast<double>(done) / static_cast<double>(rest));
}

optimizer_stage::optimizer_stage(std::vector<torch::Tensor> params, lr_schedule schedule,
                                 double weight_decay, const std::string& dtype)
  : params_(std::move(params)), schedule_(schedule) {
  opt_ = std::make_unique<torch::optim::AdamW>(
    params_, torch::optim::AdamWOptions(schedule.base).weight_decay(weight_decay));
  if (dtype == "f16")
    enable_loss_scaling();
}

std::string optimizer_stage::save() const {
  torch::serialize::OutputArchive archive;
  opt_->save(archive);
  archive.write("fedsp_steps_done", torch::tensor(static_cast<std::int64_t>(done_)));
  // The loss scaler (f16): scale, good steps in a row, steps skipped. A
  // resumed run scales as the interrupted one would have.
  archive.write("fedsp_loss_scaler",
                torch::tensor({scale_, static_cast<double>(good_), static_cast<double>(skipped_)},
                              torch::kDouble));
  std::ostringstream out;
  archive.save_to(out);
  return out.str();
}

std::optional<error> optimizer_stage::load(const std::string& bytes) {
  try {
    torch::serialize::InputArchive archive;
    std::istringstream in(bytes);
    archive.load_from(in);
    opt_->load(archive);
    torch::Tensor done;
    archive.read("fedsp_steps_done", done);
    done_ = done.item<std::int64_t>();
    torch::Tensor scaler; // absent in checkpoints written before it was saved
    if (archive.try_read("fedsp_loss_scaler", scaler)) {
      if (scaler.numel() != 3 || !scaler.isfinite().all().item<bool>())
        return error{errc::malformed, "optimizer state: the loss scaler's state is not 3 finite numbers"};
      auto v = scaler.to(torch::kDouble).contiguous();
      const double* d = v.data_ptr<double>();
      if (d[0] < 0 || d[1] < 0 || d[2] < 0)
        return error{errc::malformed, "optimizer state: the loss scaler's state is negative"};
      if (scale_ > 0 && d[0] > 0) { // f16 here and there; else this run's choice stands
        scale_ = d[0];
        good_ = static_cast<std::int64_t>(d[1]);
        skipped_ = static_cast<std::int64_t>(d[2]);
      }
    }
    return std::nullopt;
  } catch (const std::exception& e) {
    return error{errc::malformed, std::string("optimizer state does not load: ") + e.what()};
  }
}

std::vector<torch::Tensor> optimizer_stage::state_tensors() {
  std::vector<torch::Tensor> out;
  for (auto& p : params_) { // in parameter order: a stable order
    auto it = opt_->state().find(compat::optimizer_state_key(p));
    if (it == opt_->state().end())
      continue; // not stepped yet
    auto& s = static_cast<torch::optim::AdamWParamState&>(*it->second);
    for (auto* t : {&s.exp_avg(), &s.exp_avg_sq(), &s.max_exp_avg_sq()})
      if (t->defined())
        out.push_back(*t);
  }
  return out;
}

bool optimizer_stage::step(double max_norm) {
  if (scale_ > 0) {
    torch::NoGradGuard no_grad;
    auto finite = torch::ones({}, torch::kBool);
    for (auto& p : params_)
      if (p.grad().defined()) {
        p.grad().div_(scale_);
        finite = finite.to(p.grad().device()).logical_and(p.grad().isfinite().all());
      }
    if (!finite.item<bool>()) {
      opt_->zero_grad();
      scale_ /= 2;
      good_ = 0;
      ++skipped_;
      return false;
    }
    if (++good_ == 2000) {
      scale_ *= 2;
      good_ = 0;
    }
  }
  if (max_norm > 0)
    torch::nn::utils::clip_grad_norm_(params_, max_norm);
  for (auto& group : opt_->param_groups())
    static_cast<torch::optim::AdamWOptions&>(group.options()).lr(schedule_.at(done_));
  opt_->step();
  opt_->zero_grad();
  // Autocast keeps its bf16/f16 casts of the weights until the scope ends;
  // the weights just changed, so the casts are stale (models/precision.hpp).
  at::autocast::clear_cache();
  ++done_;
  return true;
}

// -- client ------------------------------------------------------------------------------

std::vector<torch::Tensor> client_trainer::state_tensors() {
  std::vector<torch::Tensor> out;
  std::vector<torch::nn::Module*> mine{prompt_.get()};
  if (!p_.shared_body)
    mine.insert(mine.begin(), body_.get());
  for (auto* m : mine)
    for (auto& p : m->parameters()) {
      out.push_back(p);
      if (p.grad().defined())
        out.push_back(p.grad());
    }
  for (auto* stage : {&model_stage_, &prompt_stage_})
    for (auto& t : stage->state_tensors())
      out.push_back(t);
  return out;
}

client_trainer::client_trainer(gpt body, soft_prompt prompt, client_params params,
                               std::vector<std::int64_t> layer_map)
  : body_(body), prompt_(prompt), p_(params), layer_map_(std::move(layer_map)),
    model_stage_(body->parameters(),
                 lr_schedule{params.model_lr,
                             warmup_steps(params.model_steps * params.rounds, params.warmup_fraction),
                             params.model_steps * params.rounds},
                 params.weight_decay, params.dtype),
    prompt_stage_(prompt->parameters(),
                  lr_schedule{params.prompt_lr,
                              warmup_steps(params.prompt_steps * params.rounds,
                                           params.warmup_fraction),
                              params.prompt_steps * params.rounds},
                  params.weight_decay, params.dtype) {}

void client_trainer::rebind_body(gpt body) {
  if (!p_.shared_body)
    throw std::logic_error("client_trainer::rebind_body: the body is not shared");
  body_ = body;
  // Stage "model" never steps on a shared body: a fresh optimiser over the
  // new body's parameters loses nothing.
  model_stage_ = optimizer_stage(body_->parameters(), lr_schedule{p_.model_lr, 0, 1},
                                 p_.weight_decay, p_.dtype);
}

torch::Tensor client_trainer::for_body(const torch::Tensor& prefix) const {
  return layer_map_.empty() ? prefix : remap_layers(prefix, layer_map_);
}

result<client_report> client_trainer::round(const prompt_set& prompts,
                                            const std::vector<encoded_example>& data,
                                            std::uint64_t seed) {
  if (auto err = check_data(data))
    return *err;
  if (auto err = prompt_->load(prompts))
    return *err;
  try {
    rng r(seed);
    client_report rep;
    rep.num_samples = data.size();
    auto pr = probe(data);
    rep.loss_before = probe_loss(body_, for_body(prompt_->materialize()), pr);

    // Stage "model": the body trains on the frozen prompts. Without steps
    // the body is left as it is: a shared one may be running another
    // session's prompt stage on another worker.
    if (p_.model_steps > 0) {
      body_->set_trainable(true);
      body_->train();
    }
    for (auto& p : prompt_->parameters())
      p.set_requires_grad(false);
    prompt_->eval();
    auto frozen = for_body(prompt_->forward()).detach(); // (L, 2, H, P, hd)
    rep.model_stage = run_stage(model_stage_, p_.model_steps, p_.batch, p_.accumulate, data, r,
                                [&](const auto& seqs) {
                                  auto [idx, tgt] = make_batch(seqs);
                                  return answer_loss(body_->forward(idx, frozen), tgt);
                                });

    // Stage "prompt": the prompts train on the frozen body (a shared body
    // was frozen once, when it was made).
    if (!p_.shared_body) {
      body_->set_trainable(false);
      body_->eval();
    }
    for (auto& p : prompt_->parameters())
      p.set_requires_grad(true);
    prompt_->train();
    rep.prompt_stage = run_stage(prompt_stage_, p_.prompt_steps, p_.batch, p_.accumulate, data,
                                 r, [&](const auto& seqs) {
                                   auto [idx, tgt] = make_batch(seqs);
                                   return answer_loss(body_->forward(idx, for_body(prompt_->forward())), tgt);
                                 });
    prompt_->eval();
    rep.loss_after = probe_loss(body_, for_body(prompt_->materialize()), pr);
    rep.prompts = prompt_->to_prompts(prompts.version);
    if (auto err = check_values(rep.prompts))
      return error{errc::non_finite, "client training diverged: " + err->text};
    return rep;
  } catch (const c10::Error& e) {
    return error{errc::unknown, std::string("torch: ") + e.what_without_backtrace()};
  }
}

// -- server ------------------------------------------------------------------------------

server_trainer::server_trainer(gpt global, soft_prompt prompt, server_params params, gpt aux,
                               std::vector<std::int64_t> to_global)
  : global_(global), prompt_(prompt), p_(params), aux_(aux), to_global_(std::move(to_global)),
    stage_(prompt->parameters(),
           lr_schedule{params.lr, warmup_steps(params.steps * params.rounds, params.warmup_fraction),
                       params.steps * params.rounds},
           params.weight_decay, params.dtype) {
  global_->set_trainable(false);
  global_->eval();
  if (aux_) {
    aux_->set_trainable(false);
    aux_->eval();
  }
}

result<server_report> server_trainer::round(const prompt_set& prompts,
                                            const std::vector<encoded_example>& data,
                                            std::uint64_t seed) {
  if (auto err = check_data(data))
    return *err;
  if (auto err = prompt_->load(prompts))
    return *err;
  if (p_.distill_weight > 0 && !aux_)
    return error{errc::bad_argument, "server distillation needs the auxiliary model"};
  try {
    rng r(seed);
    server_report rep;
    auto pr = probe(data);
    rep.loss_before = probe_loss(global_, prompt_->materialize(), pr);
    prompt_->train();
    double T = p_.temperature;
    rep.losses = run_stage(stage_, p_.steps, p_.batch, p_.accumulate, data, r, [&](const auto& seqs) {
      auto [idx, tgt] = make_batch(seqs);
      auto prefix = prompt_->forward();                // (L, 2, H, P, hd)
      auto logits = global_->forward(idx, prefix);      // (B, T, V)
      auto loss = answer_loss(logits, tgt);
      if (p_.distill_weight > 0) {
        auto aux_prefix = remap_layers(prefix, to_global_).detach();
        torch::Tensor teacher;
        {
          torch::NoGradGuard no_grad;
          teacher = torch::softmax(aux_->forward(idx, aux_prefix) / T, -1, torch::kFloat); // (B, T, V)
        }
        auto mask = tgt.ne(-100).unsqueeze(-1);                            // (B, T, 1)
        auto kl = (teacher * (torch::log(teacher.clamp_min(1e-12))
                              - torch::log_softmax(logits / T, -1, torch::kFloat)))
                    .mul(mask)
                    .sum()
                  / mask.sum().clamp_min(1);
        loss = loss + p_.distill_weight * T * T * kl;
      }
      return loss;
    });
    prompt_->eval();
    rep.loss_after = probe_loss(global_, prompt_->materialize(), pr);
    rep.prompts = prompt_->to_prompts(prompts.version);
    if (auto err = check_values(rep.prompts))
      return error{errc::non_finite, "server training diverged: " + err->text};
    return rep;
  } catch (const c10::Error& e) {
    return error{errc::unknown, std::string("torch: ") + e.what_without_backtrace()};
  }
}

// -- language models -----------------------------------------------------------------------

namespace {

/// B windows of seq_len + 1 tokens: inputs (B, T) and next-token targets (B, T).
std::pair<torch::Tensor, torch::Tensor> windows(const std::vector<std::int64_t>& tokens,
                                                std::int64_t B, std::int64_t T, rng& r) {
  auto x = torch::empty({B, T}, torch::kLong), y = torch::empty({B, T}, torch::kLong);
  auto xa = x.accessor<std::int64_t, 2>(), ya = y.accessor<std::int64_t, 2>();
  auto span = static_cast<std::uint64_t>(tokens.size()) - static_cast<std::uint64_t>(T);
  for (std::int64_t b = 0; b < B; ++b) {
    auto start = static_cast<std::size_t>(uniform_below(r, span));
    for (std::int64_t t = 0; t < T; ++t) {
      xa[b][t] = tokens[start + static_cast<std::size_t>(t)];
      ya[b][t] = tokens[start + static_cast<std::size_t>(t) + 1];
    }
  }
  return {x, y};
}

torch::Tensor lm_loss(const torch::Tensor& logits, const torch::Tensor& y) {
  return torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(2)}),
                                              y.to(logits.device()).reshape({-1}));
}

std::optional<error> check_stream(const std::vector<std::int64_t>& tokens, std::int64_t T,
                                  const char* what) {
  if (static_cast<std::int64_t>(tokens.size()) < T + 2)
    return error{errc::empty_input, std::string(what) + " has " + std::to_string(tokens.size())
                                      + " tokens, fewer than one window of "
                                      + std::to_string(T + 1)};
  return std::nullopt;
}

/// The training loop shared by pretraining and distillation: `model` trains
/// on random windows of `train` with loss_of(x, y), held_out() is recorded
/// every eval_every steps and at the end.
template <class LossFn, class HeldFn>
lm_report lm_loop(gpt& model, const std::vector<std::int64_t>& train, const lm_params& p,
                  LossFn&& loss_of, HeldFn&& held_out, const progress_fn& progress) {
  model->set_trainable(true);
  model->train();
  optimizer_stage stage(model->parameters(),
                        lr_schedule{p.lr, warmup_steps(p.steps, p.warmup_fraction), p.steps},
                        p.weight_decay, p.dtype);
  rng r(p.seed);
  lm_report rep;
  for (std::int64_t s = 0; s < p.steps; ++s) {
    auto [x, y] = windows(train, p.batch, p.seq_len, r);
    auto loss = loss_of(x, y);
    stage.scaled(loss).backward();
    stage.step(1.0);
    double l = loss.template item<double>();
    if (s == 0)
      rep.first_loss = l;
    rep.last_loss = l;
    double held = NAN;
    if ((p.eval_every > 0 && (s + 1) % p.eval_every == 0) || s + 1 == p.steps) {
      held = held_out();
      rep.heldout_curve.emplace_back(s + 1, held);
      rep.heldout_loss = held;
    }
    if (progress)
      progress(s + 1, l, held);
  }
  model->eval();
  return rep;
}

} // namespace

double heldout_loss(gpt& model, const std::vector<std::int64_t>& tokens, std::int64_t seq_len,
                    std::int64_t batch, std::int64_t batches) {
  torch::NoGradGuard no_grad;
  bool was = model->is_training();
  model->eval();
  rng r(12345); // the same windows every time: comparable figures
  double total = 0;
  for (std::int64_t i = 0; i < batches; ++i) {
    auto [x, y] = windows(tokens, batch, seq_len, r);
    total += lm_loss(model->forward(x, torch::Tensor()), y).item<double>();
  }
  model->train(was);
  return total / static_cast<double>(batches);
}

result<lm_report> pretrain(gpt& model, const std::vector<std::int64_t>& train,
                           const std::vector<std::int64_t>& heldout, const lm_params& p,
                           const progress_fn& progress) {
  if (auto err = check_stream(train, p.seq_len, "the training corpus"))
    return *err;
  if (auto err = check_stream(heldout, p.seq_len, "the held-out corpus"))
    return *err;
  try {
    return lm_loop(
      model, train, p,
      [&](const torch::Tensor& x, const torch::Tensor& y) {
        return lm_loss(model->forward(x, torch::Tensor()), y);
      },
      [&] { return heldout_loss(model, heldout, p.seq_len, p.batch, p.eval_batches); }, progress);
  } catch (const c10::Error& e) {
    return error{errc::unknown, std::string("torch: ") + e.what_without_backtrace()};
  }
}

result<lm_report> distill(gpt& student, gpt& teacher, const std::vector<std::int64_t>& train,
                          const std::vector<std::int64_t>& heldout, const distill_params& dp,
                          const progress_fn& progress) {
  auto& p = dp.lm;
  if (dp.loss != "mse" && dp.loss != "mixed" && dp.loss != "prompted")
    return error{errc::bad_argument,
                 "unknown distillation loss '" + dp.loss + "' (mse, mixed or prompted)"};
  if (dp.loss == "prompted" && student->depth() != teacher->depth())
    return error{errc::bad_argument,
                 "distillation loss 'prompted' needs the auxiliary model at the global depth ("
                   + std::to_string(teacher->depth()) + " layers, not "
                   + std::to_string(student->depth()) + ")"};
  auto gen = at::make_generator<at::CPUGeneratorImpl>(p.seed ^ 0x9e3779b97f4a7c15ULL);
  if (auto err = check_stream(train, p.seq_len, "the distillation corpus"))
    return *err;
  if (auto err = check_stream(heldout, p.seq_len, "the held-out corpus"))
    return *err;
  auto loss_of = [&](const torch::Tensor& x, const torch::Tensor& y) {
    torch::Tensor th;
    {
      torch::NoGradGuard no_grad;
      th = teacher->hidden(x, torch::Tensor()); // (B, T, C)
    }
    auto sh = student->hidden(x, torch::Tensor()); // (B, T, C)
    auto mse = torch::mse_loss(sh, th);
    if (dp.loss == "mse")
      return mse;
    if (dp.loss == "prompted") {
      auto& c = teacher->config();
      torch::Tensor prefix;
      {
        torch::NoGradGuard no_grad;
        auto scale = dp.prompt_std * std::exp(torch::rand({1}, gen).item<double>() * 2 - 1);
        prefix = (torch::randn({teacher->depth(), 2, c.kv_heads(), dp.prompt_length, c.head_dim()},
                               gen)
                  * scale)
                   .to(x.device());
        th = teacher->hidden(x, prefix);
      }
      return 0.5 * mse + 0.5 * torch::mse_loss(student->hidden(x, prefix), th);
    }
    auto slogits = student->head(sh); // (B, T, V)
    torch::Tensor tprob;
    {
      torch::NoGradGuard no_grad;
      tprob = torch::softmax(teacher->head(th), -1, torch::kFloat);
    }
    auto soft_ce = -(tprob * torch::log_softmax(slogits, -1, torch::kFloat)).sum(-1).mean();
    return 0.5 * lm_loss(slogits, y) + 0.5 * (mse + soft_ce);
  };
  try {
    teacher->set_trainable(false);
    teacher->eval();
    auto held_loss = [&] {
      torch::NoGradGuard no_grad;
      rng hr(12345); // the same windows every time: comparable figures
      double total = 0;
      for (std::int64_t i = 0; i < p.eval_batches; ++i) {
        auto [x, y] = windows(heldout, p.batch, p.seq_len, hr);
        total += loss_of(x, y).item<double>();
      }
      return total / static_cast<double>(p.eval_batches);
    };
    return lm_loop(student, train, p, loss_of, held_loss, progress);
  } catch (const c10::Error& e) {
    return error{errc::unknown, std::string("torch: ") + e.what_without_backtrace()};
  }
}

} // namespace fedsp::models
