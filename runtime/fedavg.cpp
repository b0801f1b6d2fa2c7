#include "runtime/fedavg.hpp"

#include <cmath>
#include <memory>

#include "runtime/strategy.hpp"

namespace fedsp {

result<prompt_set> fedavg(const std::vector<weighted_prompts>& inputs) {
  if (inputs.empty())
    return error{errc::empty_input, "fedavg needs at least one update"};
  for (auto& in : inputs) {
    if (in.prompts == nullptr)
      return error{errc::bad_argument, "update " + std::to_string(in.id)
                                         + " carries no prompts"};
    if (!std::isfinite(in.weight) || in.weight <= 0)
      return error{errc::bad_argument,
                   "update " + std::to_string(in.id) + " has weight "
                     + std::to_string(in.weight) + " (must be finite and > 0)"};
    if (auto err = check_layout(*inputs.front().prompts, *in.prompts)) {
      err->text = "update " + std::to_string(in.id) + ": " + err->text;
      return *err;
    }
  }
  // The fold production runs (fold_accumulator, runtime/strategy.hpp),
  // with every update based on zeros and fresh: zeros + sum_i w_i (x_i - 0)
  // / sum_i w_i. The properties tests/runtime/fedavg_test.cpp proves are
  // then properties of that fold.
  auto zero = std::make_shared<prompt_set>();
  for (auto& t : inputs.front().prompts->tensors)
    zero->tensors.push_back({t.name, t.shape, std::vector<float>(t.data.size(), 0.0f)});
  fold_accumulator sum;
  for (auto& in : inputs)
    if (auto err = sum.add(in.id, in.weight, 0, zero, *in.prompts, staleness_fn{}))
      return *err;
  auto out = sum.apply(*zero, 1.0);
  if (out)
    out.value().version = 0;
  return out;
}

} // namespace fedsp
