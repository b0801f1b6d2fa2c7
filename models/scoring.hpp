// Task examples as token sequences, answer-token batches, and multiple-choice
// scoring as lm-eval does it.
//
// Encoding a (context, choice) pair follows lm-eval's _encode_pair: trailing
// spaces of the context move to the front of the choice, whole =
// encode(context + choice), context = encode(context), and the choice tokens
// are whole[len(context):]. An empty context gets one BOS token (GPT-2's
// <|endoftext|>, 50256; byte models: '\n'); a non-empty context gets nothing
// prepended. When context + choice exceed n_positions the context is cut from
// the left: the choice is always scored whole.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include "models/gpt.hpp"
#include "models/tokenizer.hpp"
#include "runtime/dataset.hpp"

namespace fedsp::models {

struct encoded_sequence {
  std::vector<std::int64_t> tokens; // context then choice
  std::int64_t answer_start = 0;    // index of the first choice token
};

struct encoded_example {
  std::vector<encoded_sequence> choices;
  std::vector<std::size_t> choice_bytes; // for acc_norm
  int label = 0;
};

std::vector<encoded_example> encode_examples(const tokenizer& tok,
                                             const std::vector<mc_example>& data,
                                             std::int64_t n_positions);

/// idx (B, T) right-padded with 0, targets (B, T): the next token where it is
/// a choice token, -100 elsewhere (logits at i predict token i+1).
std::pair<torch::Tensor, torch::Tensor> make_batch(const std::vector<const encoded_sequence*>& seqs);

/// Mean cross-entropy over the answer tokens. logits (B, T, V), targets (B, T).
torch::Tensor answer_loss(const torch::Tensor& logits, const torch::Tensor& targets);

struct score_report {
  double acc = 0, acc_norm = 0;
  double loss = 0; // mean per-token NLL of the correct choice
  std::uint64_t n = 0;
  std::vector<std::vector<double>> loglik; // per example, per choice
  std::vector<int> pred;                   // argmax of loglik per example
};

/// Scores every example: per choice the summed log-probability of its tokens
/// given the context; acc from the sum, acc_norm from the sum divided by the
/// choice's length in bytes. `prefix` may be undefined (no prompts).
score_report score(gpt& model, const torch::Tensor& prefix,
                   const std::vector<encoded_example>& data, std::int64_t batch = 32);

} // namespace fedsp::models
