// The wire type through CAF's own serializer, as the middleman sends it
// between machines: the message survives byte for byte, its bytes go as one
// block, and a peer's bad length or a cut stream is an error, not a crash.
#include <cstring>

#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>
#include <gtest/gtest.h>

#include "actors/wire.hpp"
#include "tests/runtime/test_util.hpp"

namespace fedsp {
namespace {

std::vector<char> serialize(wire_buffer& x) {
  std::vector<char> out;
  caf::binary_serializer sink{nullptr, out};
  auto err = inspect(sink, x);
  EXPECT_FALSE(err) << caf::to_string(err);
  return out;
}

caf::error deserialize(const std::vector<char>& bytes, wire_buffer& x) {
  caf::binary_deserializer source{nullptr, bytes};
  return inspect(source, x);
}

wire_buffer an_update(std::size_t floats) {
  auto ps = test::make_prompts({static_cast<std::uint32_t>(floats)});
  return encode(envelope{"client-3", update_msg{7, 3, 2, ps, 40, {{"loss_after", 0.25}}}});
}

TEST(wire, an_update_crosses_caf_serialisation_unchanged) {
  auto buf = an_update(5000);
  auto bytes = serialize(buf);
  wire_buffer back;
  ASSERT_FALSE(deserialize(bytes, back));
  buf.flatten(); // (its prompts were referenced: the peer reads them in line)
  EXPECT_EQ(back.words, buf.words);
  auto env = decode(back);
  ASSERT_TRUE(env) << env.err().message();
  auto* up = std::get_if<update_msg>(&env.value().body);
  ASSERT_NE(up, nullptr);
  EXPECT_EQ(up->task_id, 7u);
  EXPECT_EQ(env.value().sender, "client-3");
}

TEST(wire, shared_segments_cross_as_one_flat_message) {
  // An update whose prompts the message references (encode took them):
  // CAF's serializer writes them behind the header, the peer gets one flat
  // buffer with the same bytes as flatten() and the same contents.
  auto ps = test::make_prompts({5000});
  auto buf = encode(envelope{"client-3", update_msg{7, 3, 2, ps, 40, {{"loss_after", 0.25}}}});
  ASSERT_FALSE(buf.is_flat());
  auto bytes = serialize(buf);
  wire_buffer back;
  ASSERT_FALSE(deserialize(bytes, back));
  EXPECT_TRUE(back.is_flat());
  auto flat = buf;
  flat.flatten();
  EXPECT_EQ(back.words, flat.words);
  auto env = decode(back);
  ASSERT_TRUE(env) << env.err().message();
  EXPECT_EQ(std::get<update_msg>(env.value().body).prompts, ps);
}

TEST(wire, the_message_bytes_go_as_one_block_after_a_short_length) {
  // Cap'n Proto's bytes are its wire form on every host (little-endian by
  // definition): what CAF sends is a length prefix and then those bytes.
  auto buf = an_update(300);
  auto bytes = serialize(buf);
  ASSERT_GE(bytes.size(), buf.size_bytes());
  auto prefix = bytes.size() - buf.size_bytes();
  EXPECT_LE(prefix, 10u); // a variable-length count, nothing per element
  EXPECT_EQ(std::memcmp(bytes.data() + prefix, buf.words.data(), buf.size_bytes()), 0);
}

TEST(wire, an_empty_buffer_round_trips) {
  wire_buffer empty;
  auto bytes = serialize(empty);
  wire_buffer back;
  back.words = {1, 2, 3};
  ASSERT_FALSE(deserialize(bytes, back));
  EXPECT_TRUE(back.words.empty());
}

TEST(wire, a_huge_announced_length_is_refused_before_allocating) {
  std::vector<char> bytes;
  caf::binary_serializer sink{nullptr, bytes};
  // 16 GiB of words, then nothing. (CAF 0.17 writes a sequence's length as
  // 32 bits: 2^31 is about the largest a peer can announce.)
  std::size_t n = std::size_t{1} << 31;
  ASSERT_FALSE(sink.begin_sequence(n));
  wire_buffer back;
  auto err = deserialize(bytes, back);
  ASSERT_TRUE(err);
  EXPECT_NE(caf::to_string(err).find("at most"), std::string::npos) << caf::to_string(err);
  EXPECT_TRUE(back.words.empty());
}

TEST(wire, a_cut_stream_is_an_error) {
  auto buf = an_update(1000);
  auto bytes = serialize(buf);
  for (std::size_t keep : {std::size_t{0}, std::size_t{1}, bytes.size() / 2, bytes.size() - 1}) {
    std::vector<char> cut(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(keep));
    wire_buffer back;
    EXPECT_TRUE(deserialize(cut, back)) << "kept " << keep << " of " << bytes.size() << " bytes";
  }
}

} // namespace
} // namespace fedsp
