// safetensors files: an 8-byte little-endian header length N, N bytes of JSON
// header, then raw little-endian tensor data. The header maps each tensor
// name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative
// to the start of the data) and may hold "__metadata__" (string to string).
// No torch here: tensors are raw bytes plus dtype and shape.
//
// Reading checks everything before any tensor is used: the header length
// against the file, the JSON, each entry's dtype, shape and offsets (inside
// the data, size equal to product(shape) x element size, no overlaps), and
// names each bad tensor in the error.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "runtime/error.hpp"

namespace fedsp {

enum class st_dtype { f32, f16, bf16, f64, i64, i32, u8, boolean };

/// "F32", "F16", ... as in the format.
const char* to_string(st_dtype d);
std::size_t element_size(st_dtype d);

struct st_tensor {
  st_dtype dtype = st_dtype::f32;
  std::vector<std::int64_t> shape;
  std::vector<unsigned char> data; // little-endian elements

  std::int64_t numel() const;
  /// The values as float (f32, f16, bf16, f64 converted; others an error).
  result<std::vector<float>> to_floats(const std::string& name) const;
  static st_tensor from_floats(std::vector<std::int64_t> shape, const float* values);
};

struct st_file {
  std::map<std::string, std::string> metadata;
  std::map<std::string, st_tensor> tensors;
};

/// Reads and validates a whole file. Errors name the file and the tensor.
result<st_file> read_safetensors(const std::string& path);

/// Parses an in-memory file (`where` names it in errors).
result<st_file> parse_safetensors(const std::string& bytes, const std::string& where);

/// The file's bytes (tensors in name order, data 8-byte aligned).
result<std::string> encode_safetensors(const st_file& file);

/// Writes atomically (temporary file, fsync, rename): a reader never sees a
/// half-written checkpoint. Tensors are laid out in name order.
std::optional<error> write_safetensors(const std::string& path, const st_file& file);

} // namespace fedsp
