// `fedsp prepare jsonl`: a user's own labelled multiple-choice file turned
// into the task folder every scenario reads (docs/scenarios.md, "Your own
// task").
//
// Input: JSONL, one example a line,
//   {"context": str, "choices": [str, str, ...], "label": int, "group": str}
// (`group` optional: the natural partition key of `clients.partition: group`).
// Every line is checked before anything is written; every bad line is
// reported as `file:line: what is wrong` (the first 20, then a count), and
// then nothing is written at all.
//
// Output, in a new folder (or an empty one), made in a staging folder beside
// it and renamed into place, so a failure leaves no half-written task:
//   public.jsonl  the server's labelled split (FedSP's server step)
//   train.jsonl   the clients' split, partitioned by the scenario
//   valid.jsonl, test.jsonl
//   corpus.jsonl  the LM corpus for `fedsp pretrain` and distillation,
//                 {"text": ...} a line: from --corpus (plain text, split at
//                 blank lines, or JSONL with "text"), else the public
//                 split's contexts (never the clients' data)
//   stats.json    counts per split and label, groups, the corpus's size
// Splits are stratified by label with a seeded shuffle, as `fedsp prepare
// spamassassin` does.
#pragma once

#include <cstdint>
#include <string>

#include "runtime/error.hpp"

namespace fedsp {

struct prepare_options {
  std::string in;      // the user's JSONL
  std::string out;     // the task folder to make
  std::string corpus;  // optional LM corpus: text or JSONL
  double public_fraction = 0.25;
  double valid_fraction = 0.10;
  double test_fraction = 0.15;
  std::uint64_t seed = 1;
};

struct prepare_summary {
  std::size_t examples = 0;
  std::size_t public_examples = 0, train = 0, valid = 0, test = 0;
  std::size_t labels = 0;          // distinct label values
  std::size_t groups = 0;          // distinct groups ("" counts as none)
  std::size_t corpus_documents = 0;
  std::size_t corpus_bytes = 0;
};

/// Validates `o.in` whole, then writes the task folder. Errors: bad_argument
/// (fractions, an existing non-empty --out), malformed (every bad line),
/// empty_input (too few examples for the splits), io.
result<prepare_summary> prepare_jsonl(const prepare_options& o);

} // namespace fedsp
