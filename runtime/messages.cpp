#include "runtime/messages.hpp"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cstring>

namespace fedsp {

double metric_or(const metric_list& ms, const std::string& name,
                 double fallback) {
  for (auto& [k, v] : ms)
    if (k == name)
      return v;
  return fallback;
}

const char* kind_name(const message_body& body) {
  static constexpr const char* names[] = {
    "join",        "welcome",   "task",      "update", "eval_request",
    "eval_report", "reject",    "heartbeat", "ack",    "shutdown", "model_chunk"};
  return names[body.index()];
}

} // namespace fedsp

namespace fedsp {

// zlib's CRC-32 (bench/README.md "CRC-32" compares it with the
// slicing-by-8 loop it replaced). zlib takes lengths as uInt: longer
// buffers go in pieces.
std::uint32_t crc32_update(std::uint32_t crc, const void* data, std::size_t size) {
  auto* p = static_cast<const Bytef*>(data);
  uLong c = crc;
  constexpr std::size_t piece = std::size_t{1} << 30;
  while (size > 0) {
    auto n = static_cast<uInt>(std::min(size, piece));
    c = ::crc32(c, p, n);
    p += n;
    size -= n;
  }
  return static_cast<std::uint32_t>(c);
}

std::uint32_t crc32(const void* data, std::size_t size) { return crc32_update(0, data, size); }

std::vector<model_chunk_msg> split_model(const std::string& model_id, const std::string& bytes,
                                         std::size_t chunk_bytes) {
  auto crc = crc32(bytes.data(), bytes.size());
  auto count = static_cast<std::uint32_t>(std::max<std::size_t>(
    1, (bytes.size() + chunk_bytes - 1) / chunk_bytes));
  std::vector<model_chunk_msg> out;
  for (std::uint32_t i = 0; i < count; ++i)
    out.push_back(model_chunk_msg{model_id, i, count, bytes.size(), crc,
                                  bytes.substr(i * chunk_bytes, chunk_bytes)});
  return out;
}

std::optional<error> model_assembler::add(const model_chunk_msg& c) {
  auto bad = [&](const std::string& what) {
    return error{errc::malformed, "model chunk " + std::to_string(c.index) + " of '" + c.model_id
                                    + "': " + what};
  };
  if (count_ == 0) {
    if (c.count == 0 || c.count > (1u << 20))
      return bad("announces " + std::to_string(c.count) + " chunks");
    model_id_ = c.model_id;
    count_ = c.count;
    total_ = c.total_bytes;
    crc_ = c.crc32;
    parts_.assign(count_, {});
    seen_.assign(count_, false);
  }
  if (c.model_id != model_id_ || c.count != count_ || c.total_bytes != total_ || c.crc32 != crc_)
    return bad("does not belong to model '" + model_id_ + "' being received");
  if (c.index >= count_)
    return bad("index out of range (" + std::to_string(count_) + " chunks)");
  if (seen_[c.index])
    return error{errc::duplicate, "model chunk " + std::to_string(c.index) + " arrived twice"};
  std::uint64_t have = 0;
  for (auto& p : parts_)
    have += p.size();
  if (have + c.data.size() > total_)
    return bad("more bytes than the announced " + std::to_string(total_));
  parts_[c.index] = c.data;
  seen_[c.index] = true;
  if (++received_ == count_) {
    bytes_.clear();
    bytes_.reserve(have + c.data.size()); // one file's worth, not parts plus a doubling copy
    for (auto& p : parts_) {
      bytes_ += p;
      std::string().swap(p);
    }
    parts_.clear();
    if (bytes_.size() != total_)
      return bad("model has " + std::to_string(bytes_.size()) + " bytes, "
                 + std::to_string(total_) + " announced");
    if (crc32(bytes_.data(), bytes_.size()) != crc_)
      return error{errc::malformed, "model '" + model_id_ + "' fails its CRC-32 check"};
  }
  return std::nullopt;
}

} // namespace fedsp
