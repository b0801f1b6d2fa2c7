#include "runtime/messages.hpp"

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

std::uint32_t crc32(const void* data, std::size_t size) { return crc32_update(0, data, size); }

std::uint32_t crc32_update(std::uint32_t crc, const void* data, std::size_t size) {
  // Slicing by 8 (eight 256-entry tables: t[k][b] is the CRC of byte b
  // followed by k zero bytes), eight bytes per step; the same result as the
  // byte-at-a-time loop, several times faster.
  static const auto tables = [] {
    std::array<std::array<std::uint32_t, 256>, 8> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k)
        c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[0][i] = c;
    }
    for (std::uint32_t i = 0; i < 256; ++i)
      for (int k = 1; k < 8; ++k)
        t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xFF];
    return t;
  }();
  std::uint32_t c = crc ^ 0xFFFFFFFFu;
  auto* p = static_cast<const unsigned char*>(data);
  while (size >= 8) {
    std::uint32_t lo, hi;
    std::memcpy(&lo, p, 4);
    std::memcpy(&hi, p + 4, 4);
    lo ^= c; // (little-endian: the first byte is the low one)
    c = tables[7][lo & 0xFF] ^ tables[6][(lo >> 8) & 0xFF] ^ tables[5][(lo >> 16) & 0xFF]
        ^ tables[4][lo >> 24] ^ tables[3][hi & 0xFF] ^ tables[2][(hi >> 8) & 0xFF]
        ^ tables[1][(hi >> 16) & 0xFF] ^ tables[0][hi >> 24];
    p += 8;
    size -= 8;
  }
  while (size-- > 0)
    c = tables[0][(c ^ *p++) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

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
    for (auto& p : parts_)
      bytes_ += p;
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
