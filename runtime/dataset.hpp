// Multiple-choice task data and client partitions.
//
// Task files are JSONL, one example per line:
//   {"context": "...", "choices": [" ham", " spam"], "label": 0, "group": "..."}
// (`group` optional). A data directory holds `train.jsonl` and `test.jsonl`.
#pragma once

#include <cstdint>
#include <random>

#include "runtime/rng.hpp"
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

/// Label skew (Hsu et al. 2019): for each label, shares drawn from
/// Dirichlet(alpha, ..., alpha) over the parts split that label's examples.
/// Small alpha: few labels per part; large alpha: close to iid. Draws again
/// (up to 100 times) until every part has an example, else an error.
result<std::vector<std::vector<std::size_t>>>
partition_dirichlet(const std::vector<int>& labels, std::size_t parts, double alpha,
                    std::uint64_t seed);

/// Natural partition: whole groups go to parts, largest group first, each
/// to the part with the fewest examples so far. Error when there are fewer
/// groups than parts.
result<std::vector<std::vector<std::size_t>>>
partition_by_group(const std::vector<std::string>& groups, std::size_t parts);

/// Gamma(shape, 1) sample (Marsaglia and Tsang), deterministic given `r`.
double sample_gamma(double shape, std::mt19937_64& r);

} // namespace fedsp
