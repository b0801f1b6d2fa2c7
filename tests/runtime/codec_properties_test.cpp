// Properties of the codec over generated prompt sets and corrupted buffers.
#include <cmath>
#include <cstring>

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include "runtime/codec.hpp"
#include "tests/runtime/test_util.hpp"

namespace fedsp {
namespace {

/// Finite floats of every magnitude, including denormals and signed zeros.
rc::Gen<float> finite_float() {
  return rc::gen::suchThat(rc::gen::arbitrary<float>(),
                           [](float f) { return std::isfinite(f); });
}

rc::Gen<prompt_set> any_prompt_set() {
  return rc::gen::exec([] {
    prompt_set ps;
    ps.version = *rc::gen::arbitrary<std::uint64_t>();
    auto n = *rc::gen::inRange<std::size_t>(0, 4);
    for (std::size_t i = 0; i < n; ++i) {
      tensor_buffer t;
      t.name = "t" + std::to_string(i) + *rc::gen::container<std::string>(
                                             rc::gen::inRange('a', 'z'));
      auto rank = *rc::gen::inRange<std::size_t>(0, 4);
      for (std::size_t d = 0; d < rank; ++d)
        t.shape.push_back(*rc::gen::inRange<std::uint32_t>(0, 5));
      t.data = *rc::gen::container<std::vector<float>>(t.numel(), finite_float());
      ps.tensors.push_back(std::move(t));
    }
    return ps;
  });
}

RC_GTEST_PROP(codec_properties, round_trip_is_exact_for_any_prompt_set, ()) {
  auto ps = *any_prompt_set();
  auto env = decode(encode(envelope{"client-1", update_msg{1, 1, ps.version, ps, 5, {}}}));
  RC_ASSERT(env.ok());
  auto& got = std::get<update_msg>(env.value().body).prompts;
  RC_ASSERT(got.version == ps.version);
  RC_ASSERT(got.tensors.size() == ps.tensors.size());
  for (std::size_t i = 0; i < ps.tensors.size(); ++i) {
    RC_ASSERT(got.tensors[i].name == ps.tensors[i].name);
    RC_ASSERT(got.tensors[i].shape == ps.tensors[i].shape);
    // Bitwise equality: -0.0 stays -0.0, denormals stay denormals.
    RC_ASSERT(std::memcmp(got.tensors[i].data.data(), ps.tensors[i].data.data(),
                          ps.tensors[i].data.size() * sizeof(float))
              == 0);
  }
}

/// What "decodes to a valid message" means: internally consistent prompts.
bool valid(const envelope& env) {
  const prompt_set* ps = nullptr;
  if (auto* t = std::get_if<task_msg>(&env.body))
    ps = &t->prompts;
  if (auto* u = std::get_if<update_msg>(&env.body))
    ps = &u->prompts;
  return ps == nullptr || !check_values(*ps).has_value();
}

RC_GTEST_PROP(codec_properties, any_truncation_is_rejected_or_valid, ()) {
  auto ps = *any_prompt_set();
  auto buf = encode(envelope{"server", test::make_task(ps)});
  auto cut = *rc::gen::inRange<std::size_t>(0, buf.size_bytes());
  auto r = decode_bytes(buf.bytes(), cut);
  // (RC_ASSERT decomposes its expression, so the || is evaluated here.)
  bool rejected_or_valid = !r.ok() || valid(r.value());
  RC_ASSERT(rejected_or_valid);
}

RC_GTEST_PROP(codec_properties, any_byte_mutation_is_rejected_or_valid, ()) {
  auto ps = *any_prompt_set();
  auto buf = encode(envelope{"server", test::make_task(ps)});
  auto flips = *rc::gen::inRange<int>(1, 8);
  auto* bytes = reinterpret_cast<unsigned char*>(buf.words.data());
  for (int i = 0; i < flips; ++i) {
    auto at = *rc::gen::inRange<std::size_t>(0, buf.size_bytes());
    bytes[at] = *rc::gen::arbitrary<unsigned char>();
  }
  auto r = decode(buf);
  bool rejected_or_valid = !r.ok() || valid(r.value());
  RC_ASSERT(rejected_or_valid);
}

} // namespace
} // namespace fedsp
