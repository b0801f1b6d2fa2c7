// Helpers shared by the runtime tests.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <stdlib.h>

#include "runtime/messages.hpp"

namespace fedsp::test {

/// A fresh folder under /tmp, removed with everything in it at scope end.
struct temp_dir {
  std::string path;
  temp_dir() {
    char tmpl[] = "/tmp/fedsp-test-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~temp_dir() { std::filesystem::remove_all(path); }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
};

/// A prompt set of one "prefix" tensor with the given shape and values
/// start, start + step, ...
inline prompt_set make_prompts(std::vector<std::uint32_t> shape, float start = 0.f,
                               float step = 0.25f, std::uint64_t version = 3) {
  tensor_buffer t{"prefix", std::move(shape), {}};
  t.data.resize(t.numel());
  for (std::size_t i = 0; i < t.data.size(); ++i)
    t.data[i] = start + step * static_cast<float>(i);
  return prompt_set{version, {std::move(t)}};
}

inline task_msg make_task(prompt_set ps) {
  task_msg t;
  t.task_id = 42;
  t.client_id = 3;
  t.base_version = ps.version;
  t.prompts = std::move(ps);
  t.local_steps = 10;
  t.learning_rate = 0.05f;
  t.batch_size = 8;
  t.seed = 99;
  t.deadline = 12.5;
  t.round = 2;
  return t;
}

} // namespace fedsp::test
