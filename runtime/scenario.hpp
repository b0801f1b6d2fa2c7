// Scenario files: what a run does, as plain structs with documented defaults.
// YAML is read in exactly one place (scenario.cpp); every key is checked
// (unknown key, wrong type, out-of-range value, missing file) and an error
// names the file, the line and the dotted key. docs/scenarios.md lists the keys.
#pragma once

#include <cstdint>
#include <string>

#include "runtime/error.hpp"

namespace fedsp {

/// The small GPT-style decoder of this build (models/gpt.hpp), byte vocabulary.
struct model_params {
  std::uint32_t layers = 2;        // L: transformer blocks
  std::uint32_t width = 64;        // C: embedding width, divisible by heads
  std::uint32_t heads = 4;         // H
  std::uint32_t context = 128;     // T max: positions, in bytes
  std::uint32_t prompt_length = 8; // P: prefix positions per layer
  double prompt_init_std = 0.5;    // std of the initial prefix values
  double init_std = 0.02;          // std of the random base weights (GPT-2: 0.02)
};

struct data_params {
  std::string kind = "synthetic"; // synthetic | jsonl
  std::string dir;                // jsonl: folder with train.jsonl, test.jsonl
  std::uint32_t train = 480;      // synthetic: training examples, all clients
  std::uint32_t test = 200;       // synthetic: test examples
};

struct client_params {
  std::uint32_t count = 4; // clients in the federation
};

struct federation_params {
  std::string mode = "sync";            // sync (async arrives with scenarios)
  std::uint32_t rounds = 3;             // rounds to run (versions to publish)
  std::uint32_t clients_per_round = 0;  // 0: every client, every round
  std::uint32_t quorum = 0;             // 0: all selected must answer
  double round_deadline_s = 600;        // the round closes then, quorum or not
};

struct training_params {
  std::uint32_t local_steps = 10;  // prompt-stage optimizer steps per task
  double learning_rate = 0.03;     // Adam, prompt stage
  std::uint32_t batch_size = 8;    // examples per step
};

struct eval_params {
  std::uint32_t max_examples = 0; // 0: the whole test split
};

struct compute_params {
  std::uint32_t workers = 1; // worker actors (threads running torch)
  std::uint32_t threads = 0; // torch intra-op threads; 0: cores / workers
};

struct scenario {
  std::string name;          // default: the file name without extension
  std::string path;          // the file it was read from
  std::uint64_t seed = 1;
  model_params model;
  data_params data;
  client_params clients;
  federation_params federation;
  training_params training;
  eval_params eval;
  compute_params compute;
};

/// Reads and validates a scenario file.
result<scenario> load_scenario(const std::string& path);

/// Same, from text; `path` names the source in errors and anchors relative
/// paths (data.dir) at its folder.
result<scenario> parse_scenario(const std::string& text,
                                const std::string& path);

} // namespace fedsp
