// The federation's messages as plain C++ values, one struct per variant of
// `Envelope.body` in schemas/federation.capnp (see there for field meanings).
// runtime/codec.hpp converts between these and the wire.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "runtime/error.hpp"
#include "runtime/prompt_set.hpp"

namespace fedsp {

using metric_list = std::vector<std::pair<std::string, double>>;

/// Value of a named metric, or `fallback` when absent.
double metric_or(const metric_list& ms, const std::string& name,
                 double fallback);

struct join_msg {
  std::uint32_t client_id = 0;
  std::uint64_t num_samples = 0;
};

struct welcome_msg {
  std::uint32_t client_id = 0;
  std::uint64_t current_version = 0;
  prompt_set prompt_shapes; // names and shapes; data empty
  std::string model_id;     // "" when no model follows
  std::uint64_t model_bytes = 0;
  std::uint32_t model_chunks = 0;
};

struct model_chunk_msg {
  std::string model_id;
  std::uint32_t index = 0;
  std::uint32_t count = 0;
  std::uint64_t total_bytes = 0;
  std::uint32_t crc32 = 0;
  std::string data; // raw bytes
};

struct task_msg {
  std::uint64_t task_id = 0;
  std::uint32_t client_id = 0;
  std::uint64_t base_version = 0;
  prompt_set prompts;
  /// When set, encode sends these instead of `prompts` (a sender that
  /// shares one prompt set among many tasks need not copy it); decode
  /// always fills `prompts`.
  std::shared_ptr<const prompt_set> shared_prompts;
  std::uint32_t local_steps = 0;
  float learning_rate = 0;
  std::uint32_t batch_size = 0;
  std::uint64_t seed = 0;
  double deadline = 0;
  std::uint32_t round = 0;
};

struct update_msg {
  std::uint64_t task_id = 0;
  std::uint32_t client_id = 0;
  std::uint64_t base_version = 0;
  prompt_set prompts;
  std::uint64_t num_samples = 0;
  metric_list metrics;
};

struct eval_request_msg {
  std::uint64_t version = 0;
  prompt_set prompts;
  std::string split;
};

struct eval_report_msg {
  std::uint64_t version = 0;
  std::string split;
  metric_list metrics;
  std::uint64_t num_examples = 0;
};

struct reject_msg {
  errc reason = errc::unknown; // only codes up to errc::outlier go on the wire
  std::string text;
  std::uint64_t task_id = 0;
};

struct heartbeat_msg {
  double time = 0;
  std::vector<std::uint64_t> tasks; // held: received, not yet answered
};

struct ack_msg {
  std::uint64_t task_id = 0;
};

struct shutdown_msg {
  std::string reason;
};

using message_body
  = std::variant<join_msg, welcome_msg, task_msg, update_msg, eval_request_msg,
                 eval_report_msg, reject_msg, heartbeat_msg, ack_msg,
                 shutdown_msg, model_chunk_msg>;

struct envelope {
  std::string sender;
  message_body body;
};

/// CRC-32 (IEEE 802.3; zlib computes it) of `data`.
std::uint32_t crc32(const void* data, std::size_t size);
/// The CRC-32 of what `crc` covered followed by `data` (crc32_update(0, ...)
/// is crc32(...)).
std::uint32_t crc32_update(std::uint32_t crc, const void* data, std::size_t size);

/// Splits a model file into chunks of at most `chunk_bytes`.
std::vector<model_chunk_msg> split_model(const std::string& model_id, const std::string& bytes,
                                         std::size_t chunk_bytes);

/// Collects a model's chunks; `add` checks each one, `complete` the whole.
class model_assembler {
public:
  /// Errors: a chunk of another model, inconsistent count/size, an index out
  /// of range or seen before, more bytes than announced, a checksum mismatch.
  std::optional<error> add(const model_chunk_msg& chunk);
  bool complete() const { return received_ == count_ && count_ > 0; }
  /// The whole file once complete (checksum verified by the last add()).
  const std::string& bytes() const { return bytes_; }
  /// The whole file moved out, for whoever keeps it from now on; bytes() is
  /// empty afterwards and complete() stays true.
  std::string take_bytes() { return std::move(bytes_); }
  std::uint32_t chunks_received() const { return received_; }

private:
  std::string model_id_;
  std::uint32_t count_ = 0, received_ = 0, crc_ = 0;
  std::uint64_t total_ = 0;
  std::vector<std::string> parts_;
  std::vector<bool> seen_;
  std::string bytes_;
};

/// "task", "update", ... for logs and file names.
const char* kind_name(const message_body& body);

} // namespace fedsp
