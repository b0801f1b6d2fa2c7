#include "models/auxiliary.hpp"

#include <cmath>
#include <cstdlib>

namespace fedsp::models {

result<auxiliary_model> build_auxiliary(gpt& global, const aux_params& p) {
  auto L = global->depth();
  std::vector<std::int64_t> source_block; // aux block b copies global block source_block[b]
  std::vector<std::int64_t> layer_block, to_global;
  if (p.method == "share") {
    auto depth = p.depth == 0 ? L : p.depth;
    if (p.cell < 1 || p.start < 0 || p.start + p.cell > global->num_blocks())
      return error{errc::bad_argument, "auxiliary cell of " + std::to_string(p.cell)
                                         + " block(s) from block " + std::to_string(p.start)
                                         + " does not fit the global model's "
                                         + std::to_string(global->num_blocks()) + " blocks"};
    if (depth < 1)
      return error{errc::bad_argument, "auxiliary depth must be at least 1"};
    for (std::int64_t b = 0; b < p.cell; ++b)
      source_block.push_back(global->layer_block()[static_cast<std::size_t>(p.start + b)]);
    for (std::int64_t j = 0; j < depth; ++j) {
      layer_block.push_back(j % p.cell);
      to_global.push_back(depth == L ? j
                          : depth == 1
                            ? 0
                            : static_cast<std::int64_t>(std::lround(
                                static_cast<double>(j) * static_cast<double>(L - 1)
                                / static_cast<double>(depth - 1))));
    }
  } else if (p.method == "drop") {
    if (p.keep_every < 1)
      return error{errc::bad_argument, "layer dropping needs keep_every >= 1"};
    for (std::int64_t l = 0; l < L; l += p.keep_every) {
      layer_block.push_back(static_cast<std::int64_t>(source_block.size()));
      source_block.push_back(global->layer_block()[static_cast<std::size_t>(l)]);
      to_global.push_back(l);
    }
  } else {
    return error{errc::bad_argument, "unknown auxiliary method '" + p.method + "' (share or drop)"};
  }
  auto cfg = global->config();
  cfg.n_layer = static_cast<std::int64_t>(layer_block.size());
  gpt aux(cfg, static_cast<std::int64_t>(source_block.size()), layer_block);

  // Copy weights: embeddings and final norm by name, block b from its source block.
  torch::NoGradGuard no_grad;
  auto src = global->named_parameters();
  for (auto& item : aux->named_parameters()) {
    auto name = item.key();
    auto blocks = std::string(aux->blocks_name()) + ".";
    if (name.rfind(blocks, 0) == 0) {
      auto dot = name.find('.', blocks.size());
      auto b = std::stoll(name.substr(blocks.size(), dot - blocks.size()));
      name = blocks + std::to_string(source_block[static_cast<std::size_t>(b)]) + name.substr(dot);
    }
    item.value().copy_(src[name]);
  }
  auxiliary_model out{aux, to_global, {}};
  for (std::int64_t i = 0; i < L; ++i) {
    std::int64_t best = 0;
    for (std::size_t j = 1; j < to_global.size(); ++j)
      if (std::llabs(to_global[j] - i) < std::llabs(to_global[static_cast<std::size_t>(best)] - i))
        best = static_cast<std::int64_t>(j);
    out.from_global.push_back(best);
  }
  return out;
}

} // namespace fedsp::models
