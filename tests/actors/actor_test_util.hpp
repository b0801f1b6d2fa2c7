// Helpers for actor tests: a run context writing to a temporary folder.
#pragma once

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <spdlog/sinks/null_sink.h>

#include "actors/wire.hpp"
#include "runtime/json.hpp"

namespace fedsp::test {

struct test_context {
  std::filesystem::path dir;
  real_clock clock;
  std::unique_ptr<event_log> events;
  std::shared_ptr<run_context> ctx = std::make_shared<run_context>();

  explicit test_context(const std::string& name)
    : dir(std::filesystem::temp_directory_path() / name) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    events = std::make_unique<event_log>((dir / "events.jsonl").string());
    ctx->events = events.get();
    ctx->clock = &clock;
    ctx->log = std::make_shared<spdlog::logger>(
      name, std::make_shared<spdlog::sinks::null_sink_mt>());
  }
  ~test_context() { std::filesystem::remove_all(dir); }
};

/// Every line of a JSONL file, parsed; a bad line fails the calling test.
inline std::vector<json> read_jsonl(const std::filesystem::path& path) {
  std::vector<json> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    auto j = json::parse(line);
    if (!j.ok())
      throw std::runtime_error(path.string() + ": " + j.err().text);
    out.push_back(std::move(j).value());
  }
  return out;
}

} // namespace fedsp::test
