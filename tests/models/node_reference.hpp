// Runs a node reference script and reads its JSONL output (the tokenizer
// parity tests: bpe_reference.js, hf_reference.js).
#pragma once

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/json.hpp"

namespace fedsp::test {

/// One parsed JSON value per output line; a failure to run or to parse is a
/// test failure.
inline std::vector<json> node_lines(const std::string& cmd) {
  std::vector<json> out;
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), pclose);
  if (!pipe) {
    ADD_FAILURE() << "cannot run: " << cmd;
    return out;
  }
  std::string all;
  char buf[65536];
  for (std::size_t n; (n = fread(buf, 1, sizeof buf, pipe.get())) > 0;)
    all.append(buf, n);
  for (std::size_t start = 0; start < all.size();) {
    auto end = all.find('\n', start);
    auto line = all.substr(start, end - start);
    start = end == std::string::npos ? all.size() : end + 1;
    auto doc = json::parse(line);
    if (!doc.ok()) {
      ADD_FAILURE() << cmd << ": " << doc.err().text;
      break;
    }
    out.push_back(std::move(doc).value());
  }
  return out;
}

} // namespace fedsp::test
