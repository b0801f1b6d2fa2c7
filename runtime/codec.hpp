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
#include <memory>
#include <vector>

#include "runtime/error.hpp"
#include "runtime/messages.hpp"

namespace fedsp {

/// The protocol version this build speaks (schemas/federation.capnp).
std::uint16_t protocol_version();

struct wire_buffer {
  /// The segment table and the first segment; without `shared` segments,
  /// the whole message (the stream form `capnp` reads).
  std::vector<std::uint64_t> words;

  /// Further segments, read in place within this process: the prompts of a
  /// version that every task of it carries, the prompts of an update as its
  /// trainer wrote them. They are shared (never copied) as the buffer moves
  /// or is copied between actors, and are written out after `words`, in
  /// order, wherever bytes leave the process (CAF's serializer, a file, the
  /// write-ahead log): one standard multi-segment Cap'n Proto message
  /// (docs/architecture.md, "Large prompts in one process").
  struct segment {
    std::shared_ptr<const void> owner; // keeps `data` alive
    const std::uint64_t* data = nullptr;
    std::size_t words = 0;
  };
  std::vector<segment> shared;

  /// The whole message, shared segments included.
  std::size_t size_bytes() const {
    std::size_t n = words.size() * 8;
    for (auto& s : shared)
      n += s.words * 8;
    return n;
  }
  bool is_flat() const { return shared.empty(); }
  /// Copies the shared segments behind `words` (one pass over them).
  void flatten();
  /// The bytes of a flat buffer; a buffer with shared segments stops the
  /// process here (a programming error: flatten() it, or write its pieces).
  const unsigned char* bytes() const;
  /// The message as byte ranges, in order: `words`, then each shared segment.
  template <class F> void for_each_piece(F&& f) const {
    f(reinterpret_cast<const char*>(words.data()), words.size() * 8);
    for (auto& s : shared)
      f(reinterpret_cast<const char*>(s.data), s.words * 8);
  }
  friend bool operator==(const wire_buffer& a, const wire_buffer& b);
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

/// Serialises a message with the current protocol version. The prompts are
/// copied into the message, except a task's `shared_prompts`, which the
/// message references as shared segments (f32 tensors of 4 KiB or more).
wire_buffer encode(const envelope& env, wire_dtype dtype = wire_dtype::f32);
/// The same, taking the envelope: its prompts (an update's, an evaluation
/// request's) move into the message's keeping and are referenced in place,
/// not copied (same size rule).
wire_buffer encode(envelope&& env, wire_dtype dtype = wire_dtype::f32);

/// Decodes and validates one message read in place from `buf`.
result<envelope> decode(const wire_buffer& buf,
                        const decode_limits& limits = decode_limits{});

/// An Update read in place: `msg` as `decode` gives it, but its prompts
/// hold names and shapes only; `data[t]` points at tensor t's floats inside
/// `buf` (valid while `buf` lives), checked as `decode` checks them. Errors
/// as `decode`, and `unsupported` for prompts not in f32 (decode them).
struct update_in_place {
  std::string sender;
  update_msg msg;
  std::vector<const float*> data;
};
result<update_in_place> decode_update_in_place(const wire_buffer& buf,
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
