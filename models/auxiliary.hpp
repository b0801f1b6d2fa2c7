// The auxiliary model: a small model built from the global one, which the
// server ships to clients instead of the global model (FedSP, Dong et al.
// 2023, section 3.2).
//
// Cross-layer sharing (the paper's method): take a cell of k consecutive
// blocks starting at block s of the global model and run it repeatedly to
// depth L_aux: aux layer j runs cell block j mod k. Embeddings and final
// LayerNorm are copied. Paper default s = 0, k = 1, L_aux = L: one block
// repeated to the global depth, so prompts align layer for layer.
//
// Layer dropping (a baseline): keep global blocks 0, n, 2n, ... (every n-th).
//
// Prompt layers between the two models. `to_global[j]` is the global layer
// that aux layer j exchanges prompts with:
//   sharing, L_aux == L:  j (one to one);
//   sharing, L_aux != L:  round(j (L-1) / (L_aux-1)), spread evenly over depth;
//   dropping:             j n, the global layer the block came from.
// Global -> aux: aux layer j takes global layer to_global[j]. Aux -> global:
// global layer i takes the aux layer whose to_global is nearest to i (the
// lower on a tie). With the paper default both maps are the identity.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "models/gpt.hpp"

namespace fedsp::models {

struct aux_params {
  std::string method = "share"; // share | drop
  std::int64_t start = 0;       // s: first block of the cell (share)
  std::int64_t cell = 1;        // k: blocks in the cell (share)
  std::int64_t depth = 0;       // L_aux (share); 0 = the global depth
  std::int64_t keep_every = 2;  // n (drop)
};

struct auxiliary_model {
  gpt model{nullptr};
  std::vector<std::int64_t> to_global;   // per aux layer: its global layer
  std::vector<std::int64_t> from_global; // per global layer: its aux layer
};

/// Builds the auxiliary model from `global` (weights copied, not shared).
/// Errors: a cell outside the global model, a zero depth, an unknown method.
result<auxiliary_model> build_auxiliary(gpt& global, const aux_params& params);

} // namespace fedsp::models
