// Sample-weighted federated averaging (McMahan et al. 2017), as a pure
// function: the aggregator actor converts messages and calls this.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/error.hpp"
#include "runtime/prompt_set.hpp"

namespace fedsp {

struct weighted_prompts {
  std::uint64_t id = 0;            // the update's id (its task id)
  double weight = 0;               // usually the client's sample count
  const prompt_set* prompts = nullptr;
};

/// Elementwise sum_i w_i x_i / sum_i w_i, accumulated in double by the
/// fold the aggregator runs (fold_accumulator: runtime/strategy.hpp), so
/// that the properties tested of this function hold for production's fold.
///
/// Errors: no inputs (`empty_input`); a weight that is not finite and > 0
/// (`bad_argument`); inputs whose layouts differ (`shape_mismatch`).
/// The result's version is 0: the caller stamps the version it publishes.
result<prompt_set> fedavg(const std::vector<weighted_prompts>& inputs);

} // namespace fedsp
