#include "models/simple_model.hpp"

#include <cmath>

#include <torch/torch.h>

#include "runtime/profile.hpp"
#include "runtime/rng.hpp"

namespace fedsp {

result<std::shared_ptr<const simple_model>> simple_model::create(const scenario& sc,
                                                                 bool with_test_set) {
  auto& m = sc.model;
  if (m.kind != "null" && m.kind != "mlp")
    return error{errc::bad_argument, "simple_model: model.kind is '" + m.kind + "'"};
  std::shared_ptr<simple_model> s(new simple_model());
  s->mlp_ = m.kind == "mlp";
  s->in_ = m.mlp_input;
  s->hidden_ = m.mlp_hidden;
  s->classes_ = m.mlp_classes;
  s->samples_ = m.mlp_samples;
  s->null_size_ = m.parameters;
  s->steps_ = sc.training.prompt_steps;
  s->lr_ = sc.training.prompt_lr;
  s->seed_ = sc.seed;
  if (s->mlp_) {
    rng r(mix_seed(sc.seed, 40));
    s->teacher_.resize(static_cast<std::size_t>(s->classes_) * s->in_);
    for (auto& w : s->teacher_)
      w = static_cast<float>(normal01(r));
    if (with_test_set)
      s->samples(mix_seed(sc.seed, 41), 1000, s->test_x_, s->test_y_);
  }
  return std::shared_ptr<const simple_model>(s);
}

namespace {

/// A float buffer as a tensor, without a copy (the buffer outlives it).
torch::Tensor view(const float* data, std::vector<std::int64_t> shape) {
  return torch::from_blob(const_cast<float*>(data), shape, torch::kFloat32);
}

} // namespace

void simple_model::samples(std::uint64_t seed, std::size_t n, std::vector<float>& x,
                           std::vector<std::int64_t>& y) const {
  // Inputs are standard normal from a generator seeded by `seed`; labels are
  // the teacher's argmax. Both are written into the caller's buffers.
  auto gen = at::detail::createCPUGenerator(seed);
  x.resize(n * in_);
  y.resize(n);
  auto xt = view(x.data(), {static_cast<std::int64_t>(n), in_});
  at::normal_out(xt, 0.0, 1.0, {static_cast<std::int64_t>(n), in_}, gen);
  auto yt = torch::from_blob(y.data(), {static_cast<std::int64_t>(n)}, torch::kInt64);
  auto scores = torch::mm(xt, view(teacher_.data(), {classes_, in_}).t());
  at::argmax_out(yt, scores, 1);
}

prompt_set simple_model::initial() const {
  prompt_set ps;
  if (!mlp_) {
    ps.tensors.push_back({"params", {static_cast<std::uint32_t>(null_size_)},
                          std::vector<float>(null_size_, 0.0f)});
    return ps;
  }
  rng r(mix_seed(seed_, 42));
  auto init = [&](const char* name, std::vector<std::uint32_t> shape, double std) {
    tensor_buffer t{name, shape, {}};
    t.data.resize(t.numel());
    for (auto& v : t.data)
      v = static_cast<float>(std * normal01(r));
    ps.tensors.push_back(std::move(t));
  };
  init("w1", {hidden_, in_}, 1.0 / std::sqrt(static_cast<double>(in_)));
  init("b1", {hidden_}, 0.0);
  init("w2", {classes_, hidden_}, 1.0 / std::sqrt(static_cast<double>(hidden_)));
  init("b2", {classes_}, 0.0);
  return ps;
}

std::int64_t simple_model::parameters() const {
  if (!mlp_)
    return static_cast<std::int64_t>(null_size_);
  return static_cast<std::int64_t>(hidden_) * in_ + hidden_
         + static_cast<std::int64_t>(classes_) * hidden_ + classes_;
}

double simple_model::task_flops() const {
  return mlp_ ? 6.0 * static_cast<double>(parameters()) * samples_ * steps_ : 0.0;
}

std::pair<double, double> simple_model::evaluate(const prompt_set& params) const {
  if (!mlp_)
    return {NAN, NAN};
  c10::InferenceMode guard;
  auto n = static_cast<std::int64_t>(test_y_.size());
  auto x = view(test_x_.data(), {n, in_});
  auto& p = params.tensors;
  auto h = torch::relu(torch::addmm(view(p[1].data.data(), {hidden_}), x,
                                    view(p[0].data.data(), {hidden_, in_}).t()));
  auto z = torch::addmm(view(p[3].data.data(), {classes_}), h,
                        view(p[2].data.data(), {classes_, hidden_}).t());
  auto y = torch::from_blob(const_cast<std::int64_t*>(test_y_.data()), {n}, torch::kInt64);
  double acc = z.argmax(1).eq(y).to(torch::kFloat64).mean().item<double>();
  double loss = torch::nn::functional::cross_entropy(z.to(torch::kFloat64), y).item<double>();
  return {acc, loss};
}

result<simple_model::round_result> simple_model::train(prompt_set params,
                                                       std::uint64_t seed) const {
  round_result out;
  out.params = std::move(params);
  if (!mlp_)
    return out; // the null trainer
  if (out.params.tensors.size() != 4)
    return error{errc::shape_mismatch, "mlp parameters need 4 tensors"};
  // One LibTorch graph-free step per SGD step: the gradients are written out
  // (softmax cross-entropy, ReLU), and the update goes straight into the
  // output's buffers, which the tensors below view.
  c10::InferenceMode guard;
  auto& p = out.params.tensors;
  auto w1 = view(p[0].data.data(), {hidden_, in_});
  auto b1 = view(p[1].data.data(), {hidden_});
  auto w2 = view(p[2].data.data(), {classes_, hidden_});
  auto b2 = view(p[3].data.data(), {classes_});
  auto n = static_cast<std::int64_t>(samples_);
  std::vector<float> xs;
  std::vector<std::int64_t> ys;
  for (std::uint32_t step = 0; step < steps_; ++step) {
    samples(mix_seed(seed, step), samples_, xs, ys);
    auto x = view(xs.data(), {n, in_});
    auto y = torch::from_blob(ys.data(), {n}, torch::kInt64);
    auto h = torch::relu(torch::addmm(b1, x, w1.t()));
    auto z = torch::addmm(b2, h, w2.t());
    auto logp = torch::log_softmax(z, 1);
    double loss = -logp.gather(1, y.unsqueeze(1)).sum().item<double>() / samples_;
    if (step == 0)
      out.loss_before = loss;
    out.loss_after = loss;
    // dL/dz of the summed loss: softmax minus the one-hot label.
    auto dz = logp.exp_();
    dz.scatter_add_(1, y.unsqueeze(1), torch::full({n, 1}, -1.0f));
    auto dh = torch::mm(dz, w2).mul_(h.gt(0));
    float scale = static_cast<float>(lr_ / samples_);
    w2.addmm_(dz.t(), h, 1.0f, -scale);
    b2.sub_(dz.sum(0), scale);
    w1.addmm_(dh.t(), x, 1.0f, -scale);
    b1.sub_(dh.sum(0), scale);
  }
  return out;
}

} // namespace fedsp
