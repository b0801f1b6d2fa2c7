// A mutation fuzzer for the message decoder and the validators behind it
// (runtime/codec.hpp, runtime/prompt_set.hpp), driven by a checked-in corpus
// of valid messages (tests/fuzz/corpus/, one per message kind; regenerate
// with --write-corpus).
//
//   fedsp_fuzz <corpus_dir> [--seconds S] [--seed N]
//   fedsp_fuzz --write-corpus <dir>
//
// Each iteration takes a corpus message, applies 1-4 random mutations (bit
// flips, byte overwrites with interesting values, truncation, insertion,
// duplication of a span, splicing with another message, a random 64-bit
// word) and checks:
//   - decode_bytes returns a message or an error; nothing escapes, nothing hangs;
//   - whatever decodes is canonical after one round: encode(decode(x)) decodes
//     and re-encodes to the same bytes;
//   - peek agrees with decode on the sender and on which variant it is;
//   - the prompts of a decoded task, update or eval request pass check_values.
// A failing input is written to fuzz-failure-<n>.bin and the run exits 1.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "runtime/codec.hpp"
#include "runtime/rng.hpp"
#include "tests/fuzz/mutate.hpp"

namespace fs = std::filesystem;
using namespace fedsp;

namespace {

using fuzz::bytes;
using fuzz::mutate;

prompt_set prompts(std::vector<std::uint32_t> shape) {
  tensor_buffer t{"prefix", std::move(shape), {}};
  t.data.resize(t.numel());
  for (std::size_t i = 0; i < t.data.size(); ++i)
    t.data[i] = 0.25f * static_cast<float>(i) - 1.0f;
  return prompt_set{3, {std::move(t)}};
}

std::vector<std::pair<std::string, wire_buffer>> seed_messages() {
  std::vector<std::pair<std::string, wire_buffer>> out;
  auto add = [&](const std::string& name, message_body body, wire_dtype dt = wire_dtype::f32) {
    out.emplace_back(name, encode(envelope{"client-3", std::move(body)}, dt));
  };
  add("join", join_msg{3, 120});
  add("welcome", welcome_msg{3, 2, prompts({2, 2, 1, 4, 8}), "auxiliary", 4096, 2});
  add("task", task_msg{42, 3, 2, prompts({2, 2, 1, 4, 8}), nullptr, 10, 0.05f, 8, 99, 12.5, 2});
  add("update", update_msg{42, 3, 2, prompts({2, 2, 1, 4, 8}), 120,
                           {{"loss_before", 1.5}, {"loss_after", 1.2}}});
  add("update-f16", update_msg{42, 3, 2, prompts({4, 8}), 120, {}}, wire_dtype::f16);
  add("update-bf16", update_msg{42, 3, 2, prompts({4, 8}), 120, {}}, wire_dtype::bf16);
  add("eval-request", eval_request_msg{2, prompts({2, 8}), "test"});
  add("eval-report", eval_report_msg{2, "test", {{"acc", 0.7}, {"acc_norm", 0.71}}, 200});
  add("reject", reject_msg{errc::shape_mismatch, "tensor prefix: expected [2], got [3]", 42});
  add("heartbeat", heartbeat_msg{12.0, {3}});
  add("ack", ack_msg{42});
  add("shutdown", shutdown_msg{"run complete"});
  std::string data(300, 'x');
  add("model-chunk", model_chunk_msg{"auxiliary", 0, 2, 600, crc32(data.data(), data.size()), data});
  return out;
}

const char* variant_name(const envelope& e) { return kind_name(e.body); }

bool same_variant_as_peek(const envelope& e, const envelope_head& h) {
  return e.sender == h.sender && std::holds_alternative<update_msg>(e.body) == h.is_update
         && (!h.is_update || std::get<update_msg>(e.body).task_id == h.task_id);
}

const prompt_set* prompts_of(const envelope& e) {
  if (auto* t = std::get_if<task_msg>(&e.body))
    return &t->prompts;
  if (auto* u = std::get_if<update_msg>(&e.body))
    return &u->prompts;
  if (auto* r = std::get_if<eval_request_msg>(&e.body))
    return &r->prompts;
  return nullptr;
}

wire_buffer to_words(const bytes& b) {
  wire_buffer w;
  w.words.resize(b.size() / 8);
  std::memcpy(w.words.data(), b.data(), w.words.size() * 8);
  return w;
}

/// Empty when every invariant holds, else what broke.
std::string check(const bytes& input) {
  auto env = decode_bytes(input.data(), input.size());
  if (!env)
    return ""; // refused with a reason: fine
  auto once = encode(env.value());
  auto again = decode(once);
  if (!again)
    return "re-encoded message does not decode: " + again.err().message();
  auto twice = encode(again.value());
  if (once.words != twice.words)
    return std::string("not canonical after one round (") + variant_name(env.value()) + ")";
  if (input.size() % 8 == 0) {
    auto head = peek(to_words(input));
    if (!head)
      return "decode accepts what peek refuses: " + head.err().message();
    if (!same_variant_as_peek(env.value(), head.value()))
      return "peek and decode disagree on sender or variant";
  }
  if (auto* ps = prompts_of(env.value()))
    if (auto err = check_values(*ps))
      return "decoded prompts fail check_values: " + err->message();
  return "";
}

int usage() {
  std::cerr << "usage: fedsp_fuzz <corpus_dir> [--seconds S] [--seed N]\n"
               "       fedsp_fuzz --write-corpus <dir>\n";
  return 2;
}

} // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() == 2 && args[0] == "--write-corpus") {
    fs::create_directories(args[1]);
    for (auto& [name, buf] : seed_messages()) {
      std::ofstream out(fs::path(args[1]) / (name + ".bin"), std::ios::binary);
      out.write(reinterpret_cast<const char*>(buf.bytes()), static_cast<std::streamsize>(buf.size_bytes()));
    }
    return 0;
  }
  if (args.empty())
    return usage();
  auto limits = fuzz::parse_run_limits(args, 1);
  if (!limits)
    return usage();
  auto [seconds, seed] = *limits;
  auto corpus = fuzz::load_corpus(args[0]);
  if (corpus.empty()) {
    std::cerr << "fedsp_fuzz: no corpus files in " << args[0] << " (or not a folder)\n";
    return 2;
  }
  // The corpus itself must decode: a stale corpus would fuzz nothing useful.
  for (auto& c : corpus)
    if (!decode_bytes(c.data(), c.size()) || !check(c).empty()) {
      std::cerr << "fedsp_fuzz: a corpus message does not decode cleanly; regenerate it "
                   "with --write-corpus\n";
      return 1;
    }
  rng r(seed);
  auto start = std::chrono::steady_clock::now();
  std::uint64_t runs = 0, decoded = 0;
  std::map<std::string, std::uint64_t> refused;
  while (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()
         < seconds) {
    for (int batch = 0; batch < 256; ++batch) {
      auto input = corpus[uniform_below(r, corpus.size())];
      mutate(input, r, corpus);
      ++runs;
      auto what = check(input);
      if (!what.empty()) {
        auto file = "fuzz-failure-" + std::to_string(runs) + ".bin";
        std::ofstream(file, std::ios::binary)
          .write(reinterpret_cast<const char*>(input.data()), static_cast<std::streamsize>(input.size()));
        std::cerr << "fedsp_fuzz: " << what << " (input written to " << file << ")\n";
        return 1;
      }
      auto env = decode_bytes(input.data(), input.size());
      if (env)
        ++decoded;
      else
        ++refused[to_string(env.err().code)];
    }
  }
  std::printf("fedsp_fuzz: %llu inputs in %.0f s (seed %llu): %llu decoded, refused:",
              static_cast<unsigned long long>(runs), seconds,
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(decoded));
  for (auto& [code, n] : refused)
    std::printf(" %s %llu", code.c_str(), static_cast<unsigned long long>(n));
  std::printf("\n");
  return 0;
}
