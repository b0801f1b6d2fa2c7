#include "runtime/strategy.hpp"
#include "runtime/call_syntax.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace fedsp {

const strategy_info& strategy_named(const std::string& name) {
  for (auto& row : strategies)
    if (name == row.name)
      return row;
  return strategies[0];
}

double staleness_fn::operator()(std::uint64_t tau) const {
  auto t = static_cast<double>(tau);
  switch (k) {
    case kind::constant:
      return 1.0;
    case kind::polynomial:
      return std::pow(1.0 + t, -a);
    case kind::hinge:
      return t <= b ? 1.0 : 1.0 / (a * (t - b) + 1.0);
    case kind::sqrt:
      return 1.0 / std::sqrt(1.0 + t);
  }
  return 1.0;
}

std::string staleness_fn::to_string() const {
  char buf[96];
  switch (k) {
    case kind::constant:
      return "constant";
    case kind::polynomial:
      std::snprintf(buf, sizeof buf, "polynomial(%g)", a);
      return buf;
    case kind::hinge:
      std::snprintf(buf, sizeof buf, "hinge(%g, %g)", a, b);
      return buf;
    case kind::sqrt:
      return "sqrt";
  }
  return "?";
}

result<staleness_fn> parse_staleness(const std::string& text) {
  const std::string forms = "constant, polynomial(a) with a > 0, hinge(a, b) with a > 0 and "
                            "b >= 0, or sqrt";
  std::string name;
  std::vector<std::string> words;
  std::vector<double> args;
  auto bad = error{errc::bad_argument, "staleness '" + text + "' must be " + forms};
  if (!split_call(text, name, words))
    return bad;
  for (auto& w : words) {
    double v;
    if (!parse_number(w, v))
      return bad;
    args.push_back(v);
  }
  staleness_fn s;
  if (name == "constant" && args.empty())
    s.k = staleness_fn::kind::constant;
  else if (name == "sqrt" && args.empty())
    s.k = staleness_fn::kind::sqrt;
  else if (name == "polynomial" && args.size() == 1 && args[0] > 0)
    s.k = staleness_fn::kind::polynomial, s.a = args[0];
  else if (name == "hinge" && args.size() == 2 && args[0] > 0 && args[1] >= 0)
    s.k = staleness_fn::kind::hinge, s.a = args[0], s.b = args[1];
  else
    return bad;
  return s;
}

result<prompt_set> fold_buffered(const prompt_set& current, const std::vector<stale_update>& ups,
                                 const staleness_fn& s, double eta) {
  if (ups.empty())
    return error{errc::empty_input, "no updates to aggregate"};
  if (!std::isfinite(eta) || eta <= 0)
    return error{errc::bad_argument, "server rate must be finite and > 0"};
  double total = 0;
  for (auto& u : ups) {
    if (!std::isfinite(u.num_samples) || u.num_samples <= 0)
      return error{errc::bad_argument,
                   "update " + std::to_string(u.id) + " has weight " + std::to_string(u.num_samples)};
    for (auto* ps : {u.base, u.prompts})
      if (ps == nullptr)
        return error{errc::bad_argument, "update " + std::to_string(u.id) + " lacks prompts"};
      else if (auto err = check_layout(current, *ps))
        return error{errc::shape_mismatch, "update " + std::to_string(u.id) + ": " + err->text};
    total += u.num_samples;
  }
  // Blocked over elements: a block of the accumulator stays in cache while
  // every update's block is folded in, so memory sees each input once.
  std::vector<double> w(ups.size());
  for (std::size_t k = 0; k < ups.size(); ++k)
    w[k] = eta * (ups[k].num_samples / total) * s(ups[k].staleness);
  prompt_set out = current;
  out.version = 0;
  constexpr std::size_t block = 1024;
  double acc[block];
  for (std::size_t t = 0; t < out.tensors.size(); ++t) {
    auto& x = out.tensors[t].data;
    for (std::size_t lo = 0; lo < x.size(); lo += block) {
      auto n = std::min(block, x.size() - lo);
      for (std::size_t i = 0; i < n; ++i)
        acc[i] = static_cast<double>(x[lo + i]);
      for (std::size_t k = 0; k < ups.size(); ++k) {
        const float* u = ups[k].prompts->tensors[t].data.data() + lo;
        const float* b = ups[k].base->tensors[t].data.data() + lo;
        double wk = w[k];
        for (std::size_t i = 0; i < n; ++i)
          acc[i] += wk * (static_cast<double>(u[i]) - static_cast<double>(b[i]));
      }
      for (std::size_t i = 0; i < n; ++i)
        x[lo + i] = static_cast<float>(acc[i]);
    }
  }
  return out;
}

std::optional<error> fold_accumulator::add(const stale_update& u, const staleness_fn& s) {
  if (u.base == nullptr || u.prompts == nullptr)
    return error{errc::bad_argument, "update " + std::to_string(u.id) + " lacks prompts"};
  // Not owned: the caller keeps the base alive (see the header).
  std::shared_ptr<const prompt_set> base(std::shared_ptr<const prompt_set>{}, u.base);
  return add(u.id, u.num_samples, u.staleness, std::move(base), *u.prompts, s);
}

std::optional<error> fold_accumulator::add(std::uint64_t id, double num_samples,
                                           std::uint64_t staleness,
                                           std::shared_ptr<const prompt_set> base,
                                           prompt_set prompts, const staleness_fn& s) {
  auto owned = std::make_shared<const prompt_set>(std::move(prompts));
  std::vector<const float*> data;
  for (auto& t : owned->tensors)
    data.push_back(t.data.data());
  return add_in_place(id, num_samples, staleness, std::move(base), *owned, std::move(data), owned,
                      s);
}

std::optional<error> fold_accumulator::add_in_place(std::uint64_t id, double num_samples,
                                                    std::uint64_t staleness,
                                                    std::shared_ptr<const prompt_set> base,
                                                    const prompt_set& layout,
                                                    std::vector<const float*> data,
                                                    std::shared_ptr<const void> keep,
                                                    const staleness_fn& s) {
  if (!std::isfinite(num_samples) || num_samples <= 0)
    return error{errc::bad_argument,
                 "update " + std::to_string(id) + " has weight " + std::to_string(num_samples)};
  if (base == nullptr)
    return error{errc::bad_argument, "update " + std::to_string(id) + " lacks its base"};
  if (data.size() != layout.tensors.size())
    return error{errc::bad_argument, "update " + std::to_string(id) + ": "
                                       + std::to_string(data.size()) + " data pointers for "
                                       + std::to_string(layout.tensors.size()) + " tensors"};
  if (auto err = check_layout(layout, *base))
    return error{errc::shape_mismatch, "update " + std::to_string(id) + ": " + err->text};
  if (count_ == 0) { // (the sum's storage is kept from fold to fold)
    layout_.tensors.clear();
    sum_.resize(layout.tensors.size());
    for (std::size_t t = 0; t < layout.tensors.size(); ++t) {
      auto& src = layout.tensors[t];
      layout_.tensors.push_back({src.name, src.shape, {}});
      sum_[t].assign(src.numel(), 0.0);
    }
  } else if (auto err = check_layout(layout_, layout)) {
    return error{errc::shape_mismatch, "update " + std::to_string(id) + ": " + err->text};
  }
  pending_.push_back({num_samples * s(staleness), std::move(base), std::move(data), std::move(keep)});
  total_n_ += num_samples;
  ++count_;
  if (pending_.size() >= batch_)
    flush();
  return std::nullopt;
}

namespace {

/// a[i] += w * u[i] over n elements, in double. Cloned for AVX2 where the
/// CPU has it (4 doubles a step instead of 2); no FMA in either clone, so
/// every machine rounds the same way.
__attribute__((target_clones("avx2", "default"))) void add_scaled(double* a, const float* u,
                                                                  double w, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i)
    a[i] += w * static_cast<double>(u[i]);
}

} // namespace

void fold_accumulator::flush() {
  // sum_k w_k (u_k - b_k) = sum_k w_k u_k - sum_b W_b b, W_b the total
  // weight of the updates on base b: one pass over each update, and one
  // over each distinct base (a sync round has one), not one per update.
  std::vector<std::pair<const prompt_set*, double>> bases;
  for (auto& p : pending_) {
    auto it = std::find_if(bases.begin(), bases.end(),
                           [&](auto& b) { return b.first == p.base.get(); });
    if (it == bases.end())
      bases.emplace_back(p.base.get(), p.weight);
    else
      it->second += p.weight;
  }
  // Blocked over elements: a block of the sum stays in cache while every
  // pending update's block is added, so memory sees the sum once per batch.
  constexpr std::size_t block = 1024;
  for (std::size_t t = 0; t < sum_.size(); ++t) {
    auto& acc = sum_[t];
    for (std::size_t lo = 0; lo < acc.size(); lo += block) {
      auto n = std::min(block, acc.size() - lo);
      double* a = acc.data() + lo;
      for (auto& p : pending_)
        add_scaled(a, p.data[t] + lo, p.weight, n);
      for (auto& [b, w] : bases)
        add_scaled(a, b->tensors[t].data.data() + lo, -w, n);
    }
  }
  pending_.clear();
}

result<prompt_set> fold_accumulator::apply(const prompt_set& current, double eta) {
  if (count_ == 0)
    return error{errc::empty_input, "no updates to aggregate"};
  if (!std::isfinite(eta) || eta <= 0)
    return error{errc::bad_argument, "server rate must be finite and > 0"};
  if (auto err = check_layout(layout_, current))
    return error{errc::shape_mismatch, "current prompts: " + err->text};
  flush();
  // Written once: the new prompts are built from `current` and the sum,
  // not copied from `current` first.
  prompt_set out;
  double scale = eta / total_n_;
  for (std::size_t t = 0; t < sum_.size(); ++t) {
    auto& src = current.tensors[t];
    tensor_buffer x{src.name, src.shape, std::vector<float>(src.data.size())};
    const float* c = src.data.data();
    const double* a = sum_[t].data();
    float* o = x.data.data();
    for (std::size_t i = 0; i < x.data.size(); ++i)
      o[i] = static_cast<float>(static_cast<double>(c[i]) + scale * a[i]);
    out.tensors.push_back(std::move(x));
  }
  return out;
}

void fold_accumulator::clear() {
  pending_.clear();
  total_n_ = 0;
  count_ = 0; // the next add() lays the sum out again, in the same storage
}

result<prompt_set> mix_async(const prompt_set& current, const stale_update& up,
                             const staleness_fn& s, double alpha) {
  if (!std::isfinite(alpha) || alpha <= 0 || alpha > 1)
    return error{errc::bad_argument, "fedasync alpha must be in (0, 1]"};
  if (up.prompts == nullptr)
    return error{errc::bad_argument, "update " + std::to_string(up.id) + " lacks prompts"};
  if (auto err = check_layout(current, *up.prompts))
    return error{errc::shape_mismatch, "update " + std::to_string(up.id) + ": " + err->text};
  double a = alpha * s(up.staleness);
  prompt_set out = current;
  out.version = 0;
  for (std::size_t t = 0; t < out.tensors.size(); ++t) {
    auto& x = out.tensors[t].data;
    auto& u = up.prompts->tensors[t].data;
    for (std::size_t i = 0; i < x.size(); ++i)
      x[i] = static_cast<float>((1.0 - a) * static_cast<double>(x[i]) + a * static_cast<double>(u[i]));
  }
  return out;
}

} // namespace fedsp
