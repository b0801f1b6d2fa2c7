// Mutation fuzzers for the parsers a user or a crash hands fedsp (issue 15):
//
//   fedsp_fuzz_parsers scenario <corpus_dir> [--seconds S] [--seed N]   YAML scenario loader
//   fedsp_fuzz_parsers task     <corpus_dir> ...                        JSONL task reader
//   fedsp_fuzz_parsers events   <corpus_dir> ...                        events reader of `fedsp check`
//   fedsp_fuzz_parsers wal      <corpus_dir> ...                        write-ahead log reader
//   fedsp_fuzz_parsers --write-wal-corpus <dir>
//
// Each input is a corpus file with 1-4 mutations (tests/fuzz/mutate.hpp).
// Nothing may escape (an exception ends the process: the test fails) or
// hang, and each parser keeps the promises its callers rely on:
//   scenario  an error names the file and is short (a value is never echoed
//             whole); a scenario that reads has at least one client;
//   task      an error names FILE:LINE; every example read has two or more
//             non-empty choices and a label that indexes them;
//   events    check never counts more versions or accepted updates than
//             the file has lines;
//   wal       an error names the segment and byte; the records read, written
//             again by record_log, read back the same; --salvage never fails
//             on damage.
// A failing input is written to fuzz-failure-<target>-<n>.bin; exit 1.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "runtime/dataset.hpp"
#include "runtime/durable.hpp"
#include "runtime/run_check.hpp"
#include "runtime/scenario.hpp"
#include "tests/fuzz/mutate.hpp"

namespace fs = std::filesystem;
using namespace fedsp;
using fuzz::bytes;

namespace {

struct scratch {
  std::string dir;
  scratch() {
    char tmpl[] = "/tmp/fedsp-fuzz-XXXXXX";
    dir = ::mkdtemp(tmpl);
  }
  ~scratch() { fs::remove_all(dir); }
  std::string put(const std::string& name, const bytes& b) const {
    auto path = dir + "/" + name;
    fs::create_directories(fs::path(path).parent_path());
    std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
    return path;
  }
};

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

/// Empty when the parser kept its promises on `in`, else what broke; `ok`
/// says whether it read the input (for the tally).
std::string check_scenario(const bytes& in, const scratch&, bool& ok) {
  std::string text(in.begin(), in.end());
  auto sc = parse_scenario(text, "fuzz.yaml");
  ok = sc.ok();
  if (!sc) {
    if (sc.err().text.rfind("fuzz.yaml", 0) != 0)
      return "the error does not name the file: " + sc.err().text.substr(0, 200);
    if (sc.err().text.size() > 1500)
      return "an error of " + std::to_string(sc.err().text.size()) + " bytes";
    return "";
  }
  if (sc.value().clients.count < 1)
    return "a scenario with no clients was accepted";
  return "";
}

std::string check_task(const bytes& in, const scratch& s, bool& ok) {
  auto path = s.put("task.jsonl", in);
  auto got = load_task_jsonl(path);
  ok = got.ok();
  if (!got) {
    if (got.err().code == errc::malformed && !contains(got.err().text, path + ":"))
      return "a malformed line is not named FILE:LINE: " + got.err().text.substr(0, 200);
    return "";
  }
  for (auto& ex : got.value()) {
    if (ex.choices.size() < 2)
      return "an example with fewer than two choices";
    for (auto& c : ex.choices)
      if (c.empty())
        return "an empty choice";
    if (ex.label < 0 || static_cast<std::size_t>(ex.label) >= ex.choices.size())
      return "a label outside the choices";
  }
  return "";
}

std::string check_events(const bytes& in, const scratch& s, bool& ok) {
  s.put("run/events.jsonl", in);
  auto got = check_run(s.dir + "/run");
  ok = got.ok();
  if (!got)
    return "";
  std::uint64_t lines = 1;
  for (auto c : in)
    lines += c == '\n';
  auto& c = got.value();
  if (c.versions > lines || c.accepted > lines) // (one event per line)
    return "check counts more than the file holds";
  return "";
}

std::string check_wal(const bytes& in, const scratch& s, bool& ok) {
  fs::remove_all(s.dir + "/wal");
  s.put("wal/wal-00000001.log", in);
  auto got = read_log(s.dir + "/wal", 0);
  ok = got.ok();
  auto salvaged = read_log(s.dir + "/wal", 0, true);
  if (!salvaged)
    return "--salvage failed: " + salvaged.err().text;
  if (!got) {
    if (!contains(got.err().text, "wal-00000001.log at byte "))
      return "a damaged log's error does not name segment and byte: " + got.err().text;
    return "";
  }
  if (got.value().records.size() > salvaged.value().records.size())
    return "--salvage read fewer records than a plain read";
  std::size_t total = 0;
  for (auto& r : got.value().records)
    total += r.size() + 12;
  if (total > in.size())
    return "records add up to more than the segment";
  // Written again, they read back the same.
  fs::remove_all(s.dir + "/again");
  {
    auto log = record_log::open(s.dir + "/again", false);
    if (!log)
      return "cannot open a scratch log: " + log.err().text;
    for (auto& r : got.value().records)
      if (auto err = log.value()->append(r))
        return "cannot append: " + err->text;
  }
  auto back = read_log(s.dir + "/again", 0);
  if (!back || back.value().records != got.value().records)
    return "records written again do not read back the same";
  return "";
}

using target_fn = std::string (*)(const bytes&, const scratch&, bool&);

int usage() {
  std::cerr << "usage: fedsp_fuzz_parsers scenario|task|events|wal <corpus_dir> [--seconds S] "
               "[--seed N]\n       fedsp_fuzz_parsers --write-wal-corpus <dir>\n";
  return 2;
}

} // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() == 2 && args[0] == "--write-wal-corpus") { // a few real log segments
    for (int n = 1; n <= 3; ++n) {
      auto dir = args[1] + "/tmp-" + std::to_string(n);
      auto log = record_log::open(dir, false).value();
      for (int i = 0; i < n * 2; ++i)
        log->append(std::string("U") + std::string(static_cast<std::size_t>(8 * (i + n)), char('a' + i)))
          .has_value();
      log.reset();
      fs::rename(dir + "/wal-00000001.log", args[1] + "/segment-" + std::to_string(n) + ".log");
      fs::remove_all(dir);
    }
    return 0;
  }
  if (args.size() < 2)
    return usage();
  std::map<std::string, target_fn> targets{{"scenario", check_scenario},
                                           {"task", check_task},
                                           {"events", check_events},
                                           {"wal", check_wal}};
  auto target = targets.find(args[0]);
  if (target == targets.end())
    return usage();
  auto limits = fuzz::parse_run_limits(args, 2);
  if (!limits)
    return usage();
  auto [seconds, seed] = *limits;
  auto corpus = fuzz::load_corpus(args[1]);
  if (corpus.empty()) {
    std::cerr << "fedsp_fuzz_parsers: no corpus files in " << args[1] << " (or not a folder)\n";
    return 2;
  }
  scratch s;
  // The corpus itself must parse: a stale corpus would fuzz nothing useful.
  for (auto& c : corpus) {
    bool ok = false;
    auto what = target->second(c, s, ok);
    if (!what.empty() || !ok) {
      std::cerr << "fedsp_fuzz_parsers: a corpus file of " << args[1] << " does not read cleanly"
                << (what.empty() ? "" : ": " + what) << "\n";
      return 1;
    }
  }
  rng r(seed);
  auto start = std::chrono::steady_clock::now();
  std::uint64_t runs = 0, read = 0;
  while (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()
         < seconds) {
    for (int batch = 0; batch < 16; ++batch) {
      auto input = corpus[uniform_below(r, corpus.size())];
      fuzz::mutate(input, r, corpus);
      ++runs;
      bool ok = false;
      auto what = target->second(input, s, ok);
      read += ok;
      if (!what.empty()) {
        auto file = "fuzz-failure-" + args[0] + "-" + std::to_string(runs) + ".bin";
        std::ofstream(file, std::ios::binary)
          .write(reinterpret_cast<const char*>(input.data()), static_cast<std::streamsize>(input.size()));
        std::cerr << "fedsp_fuzz_parsers " << args[0] << ": " << what << " (input written to "
                  << file << ")\n";
        return 1;
      }
    }
  }
  std::printf("fedsp_fuzz_parsers %s: %llu inputs in %.0f s (seed %llu): %llu read, %llu refused\n",
              args[0].c_str(), static_cast<unsigned long long>(runs), seconds,
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(read),
              static_cast<unsigned long long>(runs - read));
  return 0;
}
