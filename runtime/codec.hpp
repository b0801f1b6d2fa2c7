// Encoding and decoding of federation messages (schemas/federation.capnp).
//
// A `wire_buffer` is one unpacked Cap'n Proto message in 8-byte words; it is
// what CAF carries between actors and what `fedsp inspect` reads from a file.
// `decode` reads the buffer in place (no copy of the words), bounded by
// `decode_limits`, and validates everything a receiver relies on before any
// state is touched: protocol version, known variant, tensor dtype, shape and
// data length, unique tensor names, finite values. Every failure is a typed
// `error`, never an exception or a crash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "runtime/error.hpp"
#include "runtime/messages.hpp"

namespace fedsp {

/// The protocol version this build speaks (schemas/federation.capnp).
std::uint16_t protocol_version();

struct wire_buffer {
  std::vector<std::uint64_t> words;

  std::size_t size_bytes() const { return words.size() * 8; }
  const unsigned char* bytes() const {
    return reinterpret_cast<const unsigned char*>(words.data());
  }
  friend bool operator==(const wire_buffer& a, const wire_buffer& b) {
    return a.words == b.words;
  }
};

/// Element type used on the wire for prompt tensors.
enum class wire_dtype { f32, f16, bf16 };

struct decode_limits {
  /// Largest message accepted, in bytes. The default holds the deep prompts
  /// of gpt2-xl (48 layers x 2 x 1600 x 40 positions in f32 = 24.6 MB) with
  /// room to spare, and nothing much larger.
  std::size_t max_bytes = std::size_t{64} << 20;
  /// Cap'n Proto traversal limit in words. The decoder reads each word of a
  /// message at most twice (validation, conversion), so twice the size limit.
  std::uint64_t traversal_limit_words = (std::uint64_t{64} << 20) / 8 * 2;
  /// Pointer nesting depth: the schema's deepest path is Envelope > Update >
  /// PromptSet > List(Tensor) > Tensor > Data, six levels.
  int nesting_limit = 16;
};

/// Serialises a message with the current protocol version.
wire_buffer encode(const envelope& env, wire_dtype dtype = wire_dtype::f32);

/// Decodes and validates one message read in place from `buf`.
result<envelope> decode(const wire_buffer& buf,
                        const decode_limits& limits = decode_limits{});

/// The routing facts of a message, read without touching its payload: who
/// sent it, which variant it is and, for an Update, its task and client.
/// Only the protocol version is checked; `decode` validates the rest.
struct envelope_head {
  std::string sender;
  bool is_update = false;
  std::uint64_t task_id = 0;
  std::uint32_t client_id = 0;
};
result<envelope_head> peek(const wire_buffer& buf, const decode_limits& limits = decode_limits{});

/// Decodes from arbitrary bytes (a file, a socket): copies into an aligned
/// buffer first when the length is not a whole number of words or the
/// pointer is misaligned; a partial trailing word is `malformed`.
result<envelope> decode_bytes(const void* data, std::size_t size,
                              const decode_limits& limits = decode_limits{});

/// Multi-line, human-readable rendering of a decoded message (fedsp inspect).
std::string describe(const envelope& env);

// -- half-precision helpers (exposed for tests) -------------------------------

std::uint16_t float_to_f16(float f);
float f16_to_float(std::uint16_t h);
std::uint16_t float_to_bf16(float f);
float bf16_to_float(std::uint16_t h);

} // namespace fedsp
