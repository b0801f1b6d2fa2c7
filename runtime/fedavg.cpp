#include "runtime/fedavg.hpp"

#include <cmath>

namespace fedsp {

result<prompt_set> fedavg(const std::vector<weighted_prompts>& inputs) {
  if (inputs.empty())
    return error{errc::empty_input, "fedavg needs at least one update"};
  double total = 0;
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
    total += in.weight;
  }
  prompt_set out;
  out.tensors.reserve(inputs.front().prompts->tensors.size());
  std::vector<double> acc;
  for (std::size_t t = 0; t < inputs.front().prompts->tensors.size(); ++t) {
    auto& first = inputs.front().prompts->tensors[t];
    acc.assign(first.data.size(), 0.0);
    for (auto& in : inputs) {
      auto& src = in.prompts->tensors[t].data;
      double w = in.weight / total;
      for (std::size_t k = 0; k < acc.size(); ++k)
        acc[k] += w * static_cast<double>(src[k]);
    }
    tensor_buffer avg{first.name, first.shape, {}};
    avg.data.assign(acc.begin(), acc.end());
    out.tensors.push_back(std::move(avg));
  }
  return out;
}

} // namespace fedsp
