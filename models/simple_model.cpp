#include "models/simple_model.hpp"

#include <algorithm>
#include <cmath>

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
      w = normal01(r);
    if (with_test_set)
      s->samples(mix_seed(sc.seed, 41), 1000, s->test_x_, s->test_y_);
  }
  return std::shared_ptr<const simple_model>(s);
}

void simple_model::samples(std::uint64_t seed, std::size_t n, std::vector<double>& x,
                           std::vector<int>& y) const {
  rng r(seed);
  x.resize(n * in_);
  y.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    double* xi = &x[i * in_];
    for (std::uint32_t j = 0; j < in_; ++j)
      xi[j] = normal01(r);
    int best = 0;
    double best_v = -1e300;
    for (std::uint32_t c = 0; c < classes_; ++c) {
      double v = 0;
      for (std::uint32_t j = 0; j < in_; ++j)
        v += teacher_[c * in_ + j] * xi[j];
      if (v > best_v)
        best_v = v, best = static_cast<int>(c);
    }
    y[i] = best;
  }
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

/// Logits into z (and hidden activations into h); returns nothing useful.
double simple_model::forward(const prompt_set& p, const double* x, std::vector<double>& h,
                             std::vector<double>& z) const {
  auto& w1 = p.tensors[0].data;
  auto& b1 = p.tensors[1].data;
  auto& w2 = p.tensors[2].data;
  auto& b2 = p.tensors[3].data;
  h.assign(hidden_, 0.0);
  z.assign(classes_, 0.0);
  for (std::uint32_t k = 0; k < hidden_; ++k) {
    double a = b1[k];
    const float* row = &w1[static_cast<std::size_t>(k) * in_];
    for (std::uint32_t j = 0; j < in_; ++j)
      a += row[j] * x[j];
    h[k] = a > 0 ? a : 0;
  }
  for (std::uint32_t c = 0; c < classes_; ++c) {
    double a = b2[c];
    const float* row = &w2[static_cast<std::size_t>(c) * hidden_];
    for (std::uint32_t k = 0; k < hidden_; ++k)
      a += row[k] * h[k];
    z[c] = a;
  }
  return 0;
}

namespace {

/// Softmax in place; returns -log p[label].
double softmax_ce(std::vector<double>& z, int label) {
  double mx = *std::max_element(z.begin(), z.end());
  double sum = 0;
  for (auto& v : z)
    sum += (v = std::exp(v - mx));
  for (auto& v : z)
    v /= sum;
  return -std::log(std::max(z[static_cast<std::size_t>(label)], 1e-300));
}

} // namespace

std::pair<double, double> simple_model::evaluate(const prompt_set& params) const {
  if (!mlp_)
    return {NAN, NAN};
  std::vector<double> h, z;
  double correct = 0, loss = 0;
  for (std::size_t i = 0; i < test_y_.size(); ++i) {
    forward(params, &test_x_[i * in_], h, z);
    auto pred = std::max_element(z.begin(), z.end()) - z.begin();
    correct += pred == test_y_[i];
    loss += softmax_ce(z, test_y_[i]);
  }
  auto n = static_cast<double>(test_y_.size());
  return {correct / n, loss / n};
}

result<simple_model::round_result> simple_model::train(const prompt_set& params,
                                                       std::uint64_t seed) const {
  round_result out;
  out.params = params;
  if (!mlp_)
    return out; // the null trainer
  if (params.tensors.size() != 4)
    return error{errc::shape_mismatch, "mlp parameters need 4 tensors"};
  auto& p = out.params;
  std::vector<double> x, h, z, gh(hidden_);
  std::vector<int> y;
  std::vector<double> g1(p.tensors[0].data.size()), gb1(hidden_), g2(p.tensors[2].data.size()),
    gb2(classes_);
  for (std::uint32_t step = 0; step < steps_; ++step) {
    samples(mix_seed(seed, step), samples_, x, y);
    std::fill(g1.begin(), g1.end(), 0.0);
    std::fill(gb1.begin(), gb1.end(), 0.0);
    std::fill(g2.begin(), g2.end(), 0.0);
    std::fill(gb2.begin(), gb2.end(), 0.0);
    double loss = 0;
    for (std::uint32_t i = 0; i < samples_; ++i) {
      const double* xi = &x[static_cast<std::size_t>(i) * in_];
      forward(p, xi, h, z);
      loss += softmax_ce(z, y[i]);
      z[static_cast<std::size_t>(y[i])] -= 1.0; // dL/dz
      auto& w2 = p.tensors[2].data;
      std::fill(gh.begin(), gh.end(), 0.0);
      for (std::uint32_t c = 0; c < classes_; ++c) {
        gb2[c] += z[c];
        for (std::uint32_t k = 0; k < hidden_; ++k) {
          g2[c * hidden_ + k] += z[c] * h[k];
          gh[k] += z[c] * w2[c * hidden_ + k];
        }
      }
      for (std::uint32_t k = 0; k < hidden_; ++k) {
        if (h[k] <= 0)
          continue;
        gb1[k] += gh[k];
        double* row = &g1[static_cast<std::size_t>(k) * in_];
        for (std::uint32_t j = 0; j < in_; ++j)
          row[j] += gh[k] * xi[j];
      }
    }
    loss /= samples_;
    if (step == 0)
      out.loss_before = loss;
    out.loss_after = loss;
    double scale = lr_ / samples_;
    auto apply = [&](tensor_buffer& t, const std::vector<double>& g) {
      for (std::size_t i = 0; i < t.data.size(); ++i)
        t.data[i] = static_cast<float>(t.data[i] - scale * g[i]);
    };
    apply(p.tensors[0], g1);
    apply(p.tensors[1], gb1);
    apply(p.tensors[2], g2);
    apply(p.tensors[3], gb2);
  }
  return out;
}

} // namespace fedsp
