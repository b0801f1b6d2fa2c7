// The small model, prompt layout and synthetic task the trainer and device
// tests train on (tests/models/trainer_test.cpp, precision_test.cpp).
#pragma once

#include <cstdint>
#include <vector>

#include "models/gpt.hpp"
#include "models/scoring.hpp"
#include "models/soft_prompt.hpp"
#include "models/tokenizer.hpp"
#include "runtime/dataset.hpp"

namespace fedsp::models::fixtures {

inline decoder_config small() {
  decoder_config c;
  c.n_layer = 2;
  c.n_embd = 32;
  c.n_head = 4;
  c.n_positions = 64;
  c.vocab_size = 256;
  c.initializer_range = 0.2;
  return c;
}

inline soft_prompt_config prompt_cfg(bool reparam = false) {
  soft_prompt_config c;
  c.depth = 2;
  c.n_head = 4;
  c.head_dim = 8;
  c.length = 4;
  c.reparameterize = reparam;
  c.hidden = 16;
  return c;
}

inline std::vector<encoded_example> task(std::size_t n, std::uint64_t seed) {
  byte_tokenizer tok;
  return encode_examples(tok, make_synthetic_task(n, seed), 64);
}

} // namespace fedsp::models::fixtures
