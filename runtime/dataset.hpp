// Multiple-choice task data and client partitions.
//
// Task files are JSONL, one example per line:
//   {"context": "...", "choices": [" ham", " spam"], "label": 0, "group": "..."}
// (`group` optional). A data directory holds `train.jsonl` and `test.jsonl`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/error.hpp"

namespace fedsp {

struct mc_example {
  std::string context;
  std::vector<std::string> choices; // at least two
  int label = 0;                    // index into choices
  std::string group;                // optional natural partition key
};

/// A built-in synthetic two-choice task that needs no download: a short
/// "review" of positive, negative and neutral words; the answer is the
/// majority sentiment (" positive" / " negative"), balanced classes.
std::vector<mc_example> make_synthetic_task(std::size_t n, std::uint64_t seed);

/// Reads a task JSONL file. Errors name the file, the line and the field.
result<std::vector<mc_example>> load_task_jsonl(const std::string& path);

/// Reads an LM corpus, JSONL `{"text": ...}` one document a line. Errors name
/// the file and the line.
result<std::vector<std::string>> load_corpus_jsonl(const std::string& path);

/// Splits [0, n) into `parts` shuffled shards whose sizes differ by at most 1.
std::vector<std::vector<std::size_t>> partition_iid(std::size_t n,
                                                    std::size_t parts,
                                                    std::uint64_t seed);

} // namespace fedsp
