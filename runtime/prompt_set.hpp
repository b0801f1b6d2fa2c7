// Soft prompts as plain data: named float buffers with shapes and a version.
// This is what travels between the federation's actors; models/ converts it to
// and from tensors, runtime/codec.hpp to and from the wire.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "runtime/error.hpp"

namespace fedsp {

struct tensor_buffer {
  std::string name;
  std::vector<std::uint32_t> shape; // row-major; empty = scalar
  std::vector<float> data;          // product(shape) elements

  /// Product of the shape (1 for a scalar).
  std::size_t numel() const;

  friend bool operator==(const tensor_buffer& a, const tensor_buffer& b) {
    return a.name == b.name && a.shape == b.shape && a.data == b.data;
  }
};

struct prompt_set {
  std::uint64_t version = 0;
  std::vector<tensor_buffer> tensors;

  /// Tensor by name, or nullptr.
  const tensor_buffer* find(const std::string& name) const;

  /// Total number of float elements over all tensors.
  std::size_t numel() const;

  friend bool operator==(const prompt_set& a, const prompt_set& b) {
    return a.version == b.version && a.tensors == b.tensors;
  }
};

/// "name[d0,d1,...]" for messages.
std::string describe_shape(const tensor_buffer& t);

/// Checks that `got` has exactly the tensors of `expected` (same names in the
/// same order, same shapes). The error names the first tensor that differs.
std::optional<error> check_layout(const prompt_set& expected,
                                  const prompt_set& got);

/// Checks internal consistency (data size equals product of the shape, unique
/// names) and that every value is finite. The error names the tensor and the
/// index of the first offending element.
std::optional<error> check_values(const prompt_set& ps);

/// Every one of n floats is finite; the error names `name` and the index
/// of the first that is not.
std::optional<error> check_finite(const std::string& name, const float* data, std::size_t n);

} // namespace fedsp
