#include "runtime/prompt_set.hpp"

#include <cstring>

#include <cmath>
#include <set>

namespace fedsp {

std::size_t tensor_buffer::numel() const {
  std::size_t n = 1;
  for (auto d : shape)
    n *= d;
  return n;
}

const tensor_buffer* prompt_set::find(const std::string& name) const {
  for (auto& t : tensors)
    if (t.name == name)
      return &t;
  return nullptr;
}

std::size_t prompt_set::numel() const {
  std::size_t n = 0;
  for (auto& t : tensors)
    n += t.data.size();
  return n;
}

std::string describe_shape(const tensor_buffer& t) {
  std::string out = t.name + "[";
  for (std::size_t i = 0; i < t.shape.size(); ++i) {
    if (i)
      out += ',';
    out += std::to_string(t.shape[i]);
  }
  return out + "]";
}

std::optional<error> check_layout(const prompt_set& expected,
                                  const prompt_set& got) {
  if (expected.tensors.size() != got.tensors.size())
    return error{errc::shape_mismatch,
                 "expected " + std::to_string(expected.tensors.size())
                   + " prompt tensors, got "
                   + std::to_string(got.tensors.size())};
  for (std::size_t i = 0; i < expected.tensors.size(); ++i) {
    auto& e = expected.tensors[i];
    auto& g = got.tensors[i];
    if (e.name != g.name || e.shape != g.shape)
      return error{errc::shape_mismatch, "tensor " + std::to_string(i)
                                           + ": expected " + describe_shape(e)
                                           + ", got " + describe_shape(g)};
  }
  return std::nullopt;
}

namespace {

/// No NaN or infinity among n floats: an exponent of all ones. Branch-free,
/// so the compiler vectorises it (cloned for AVX2 where the CPU has it);
/// the slow loop below finds the culprit.
__attribute__((target_clones("avx2", "default"))) bool all_finite(const float* p, std::size_t n) {
  std::uint32_t bad = 0;
  for (std::size_t i = 0; i < n; ++i) {
    std::uint32_t u;
    std::memcpy(&u, p + i, 4);
    bad |= static_cast<std::uint32_t>((u & 0x7f800000u) == 0x7f800000u);
  }
  return bad == 0;
}

} // namespace

std::optional<error> check_finite(const std::string& name, const float* data, std::size_t n) {
  if (all_finite(data, n))
    return std::nullopt;
  for (std::size_t i = 0; i < n; ++i)
    if (!std::isfinite(data[i]))
      return error{errc::non_finite, "tensor '" + name + "' element " + std::to_string(i)
                                       + " is " + std::to_string(data[i])};
  return std::nullopt;
}

std::optional<error> check_values(const prompt_set& ps) {
  std::set<std::string> names;
  for (auto& t : ps.tensors) {
    if (!names.insert(t.name).second)
      return error{errc::malformed, "duplicate tensor name '" + t.name + "'"};
    if (t.numel() != t.data.size())
      return error{errc::shape_mismatch,
                   "tensor " + describe_shape(t) + " holds "
                     + std::to_string(t.data.size()) + " values, shape needs "
                     + std::to_string(t.numel())};
    if (auto err = check_finite(t.name, t.data.data(), t.data.size()))
      return err;
  }
  return std::nullopt;
}

} // namespace fedsp
