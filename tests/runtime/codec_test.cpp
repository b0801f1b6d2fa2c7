// The codec: exact round trips, and a typed error for every kind of bad input.
#include <cmath>
#include <cstring>
#include <fstream>
#include <filesystem>

#include <capnp/message.h>
#include <capnp/schema.h>
#include <capnp/serialize.h>
#include <gtest/gtest.h>

#include "runtime/codec.hpp"
#include "schemas/federation.capnp.h"
#include "tests/runtime/test_util.hpp"

namespace fedsp {
namespace {

wire_buffer to_buffer(capnp::MessageBuilder& mb) {
  auto flat = capnp::messageToFlatArray(mb);
  wire_buffer out;
  out.words.resize(flat.size());
  std::memcpy(out.words.data(), flat.begin(), flat.size() * 8);
  return out;
}

/// A Task whose single tensor is built by `fill` directly with Cap'n Proto,
/// so tests can write what our encoder never would.
template <class F>
wire_buffer raw_task(F fill, std::uint16_t version = protocol_version()) {
  capnp::MallocMessageBuilder mb;
  auto root = mb.initRoot<wire::Envelope>();
  root.setProtocolVersion(version);
  root.setSender("server");
  auto task = root.initBody().initTask();
  task.setTaskId(1);
  auto ps = task.initPrompts();
  fill(ps.initTensors(1)[0]);
  return to_buffer(mb);
}

TEST(codec, task_round_trip_is_exact) {
  auto task = test::make_task(test::make_prompts({2, 2, 3}));
  auto env = decode(encode(envelope{"server", task}));
  ASSERT_TRUE(env.ok()) << env.err().message();
  EXPECT_EQ(env.value().sender, "server");
  auto& got = std::get<task_msg>(env.value().body);
  EXPECT_EQ(got.task_id, 42u);
  EXPECT_EQ(got.client_id, 3u);
  EXPECT_EQ(got.round, 2u);
  EXPECT_EQ(got.deadline, 12.5);
  EXPECT_EQ(got.prompts, task.prompts);
}

TEST(codec, every_message_kind_round_trips) {
  auto ps = test::make_prompts({4});
  std::vector<message_body> bodies{
    join_msg{7, 120},
    welcome_msg{7, 2, test::make_prompts({1, 2})},
    test::make_task(ps),
    update_msg{42, 3, 3, ps, 64, {{"loss_before", 1.5}, {"loss_after", 0.5}}},
    eval_request_msg{3, ps, "test"},
    eval_report_msg{3, "test", {{"acc", 0.75}}, 200},
    reject_msg{errc::duplicate, "second update", 42},
    heartbeat_msg{1.25, {7, 9}},
    ack_msg{42},
    shutdown_msg{"done"},
    model_chunk_msg{"aux-1", 2, 5, 1000, 0xdeadbeef, std::string("\0\1\2", 3)},
  };
  for (auto& body : bodies) {
    auto env = decode(encode(envelope{"x", body}));
    ASSERT_TRUE(env.ok()) << kind_name(body) << ": " << env.err().message();
    EXPECT_EQ(env.value().body.index(), body.index()) << kind_name(body);
  }
  auto up = decode(encode(envelope{"x", bodies[3]}));
  auto& u = std::get<update_msg>(up.value().body);
  EXPECT_EQ(metric_or(u.metrics, "loss_after", -1), 0.5);
  auto rej = decode(encode(envelope{"x", bodies[6]}));
  EXPECT_EQ(std::get<reject_msg>(rej.value().body).reason, errc::duplicate);
  auto chunk = decode(encode(envelope{"x", bodies[10]}));
  EXPECT_EQ(std::get<model_chunk_msg>(chunk.value().body).data, std::string("\0\1\2", 3));
  EXPECT_EQ(std::get<model_chunk_msg>(chunk.value().body).crc32, 0xdeadbeefu);
  auto hb = decode(encode(envelope{"x", bodies[7]}));
  EXPECT_EQ(std::get<heartbeat_msg>(hb.value().body).tasks, (std::vector<std::uint64_t>{7, 9}));
  auto wel = decode(encode(envelope{"x", bodies[1]}));
  EXPECT_EQ(std::get<welcome_msg>(wel.value().body).prompt_shapes.tensors[0].shape,
            (std::vector<std::uint32_t>{1, 2}));
}

TEST(codec, half_precision_round_trips_within_its_resolution) {
  auto ps = test::make_prompts({64}, -3.f, 0.1f);
  for (auto dt : {wire_dtype::f16, wire_dtype::bf16}) {
    auto env = decode(encode(envelope{"s", test::make_task(ps)}, dt));
    ASSERT_TRUE(env.ok());
    auto& got = std::get<task_msg>(env.value().body).prompts.tensors[0].data;
    // f16 keeps 11 significant bits, bf16 8: relative error 2^-11 and 2^-8.
    double tol = dt == wire_dtype::f16 ? 1.0 / 2048 : 1.0 / 256;
    for (std::size_t i = 0; i < got.size(); ++i)
      EXPECT_NEAR(got[i], ps.tensors[0].data[i],
                  tol * std::fabs(ps.tensors[0].data[i]) + 1e-7);
  }
  // Exactly representable values survive unchanged, specials keep their class.
  EXPECT_EQ(f16_to_float(float_to_f16(1.5f)), 1.5f);
  EXPECT_EQ(bf16_to_float(float_to_bf16(-2.0f)), -2.0f);
  EXPECT_TRUE(std::isinf(f16_to_float(float_to_f16(1e6f))));
  EXPECT_EQ(f16_to_float(float_to_f16(5.9604645e-8f)), 5.9604645e-8f); // smallest subnormal
}

TEST(codec, empty_and_garbage_bytes_are_malformed) {
  EXPECT_EQ(decode(wire_buffer{}).err().code, errc::malformed);
  wire_buffer junk{{0xdeadbeefcafebabeull, 0x0123456789abcdefull, 7, 9}};
  auto r = decode(junk);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, errc::malformed);
  std::string text = "definitely not a capnp message!!";
  EXPECT_EQ(decode_bytes(text.data(), text.size()).err().code, errc::malformed);
}

TEST(codec, peek_reads_the_routing_facts_of_an_update_and_refuses_garbage) {
  update_msg up{42, 7, 3, test::make_prompts({4, 4}), 10, {}};
  auto head = peek(encode(envelope{"client-7", up}));
  ASSERT_TRUE(head) << head.err().text;
  EXPECT_TRUE(head.value().is_update);
  EXPECT_EQ(head.value().task_id, 42u);
  EXPECT_EQ(head.value().client_id, 7u);
  EXPECT_EQ(head.value().sender, "client-7");
  auto join = peek(encode(envelope{"client-7", join_msg{7, 10}}));
  ASSERT_TRUE(join);
  EXPECT_FALSE(join.value().is_update);
  EXPECT_EQ(peek(wire_buffer{}).err().code, errc::malformed);
  EXPECT_EQ(peek(wire_buffer{{0xdeadbeefcafebabeull, 0x0123456789abcdefull, 7, 9}}).err().code,
            errc::malformed);
}

TEST(codec, inputs_the_fuzzer_found_are_refused) {
  // tests/fuzz/regressions: each file once made decode misbehave (see its
  // name); each must now be refused with a reason, quickly.
  int n = 0;
  for (auto& entry : std::filesystem::directory_iterator(FEDSP_SOURCE_DIR "/tests/fuzz/regressions")) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto r = decode_bytes(bytes.data(), bytes.size());
    EXPECT_FALSE(r) << entry.path();
    ++n;
  }
  EXPECT_GE(n, 1);
  // The first one: an Update whose metrics list holds 14.5 million
  // zero-sized elements in 776 bytes.
  std::ifstream in(FEDSP_SOURCE_DIR "/tests/fuzz/regressions/zero-size-metric-list.bin",
                   std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto r = decode_bytes(bytes.data(), bytes.size());
  ASSERT_FALSE(r);
  EXPECT_NE(r.err().text.find("metrics, at most 1024"), std::string::npos) << r.err().text;
}

TEST(codec, a_task_with_shared_prompts_encodes_as_with_its_own) {
  // Small prompts are copied either way: the same bytes.
  auto own = test::make_task(test::make_prompts({2, 8}));
  auto shared = own;
  shared.shared_prompts = std::make_shared<const prompt_set>(own.prompts);
  shared.prompts = prompt_set{};
  EXPECT_EQ(encode(envelope{"server", own}).words, encode(envelope{"server", shared}).words);
}

/// Two tensors: one large enough to be referenced (4 KiB or more), one not.
prompt_set large_prompts() {
  auto ps = test::make_prompts({64, 32}, 0.f, 0.001f); // 2,048 floats = 8 KiB
  ps.tensors.push_back({"small", {3}, {1.f, 2.f, 3.f}});
  return ps;
}

TEST(codec, large_shared_prompts_are_read_in_place_by_every_task) {
  auto version = std::make_shared<const prompt_set>(large_prompts());
  auto task = test::make_task(prompt_set{});
  task.shared_prompts = version;
  auto a = encode(envelope{"server", task});
  task.task_id = 43;
  auto b = encode(envelope{"server", task});
  // Both tasks point at the version's own floats: nothing was copied.
  auto* floats = reinterpret_cast<const std::uint64_t*>(version->tensors[0].data.data());
  ASSERT_EQ(a.shared.size(), 1u);
  ASSERT_EQ(b.shared.size(), 1u);
  EXPECT_EQ(a.shared[0].data, floats);
  EXPECT_EQ(b.shared[0].data, floats);
  EXPECT_EQ(a.shared[0].words, 2048u * 4 / 8);
  // The header is small; the whole message is still counted.
  EXPECT_LT(a.words.size() * 8, 1024u);
  EXPECT_GT(a.size_bytes(), 2048u * 4);
  auto got = decode(a);
  ASSERT_TRUE(got) << got.err().message();
  auto& t = std::get<task_msg>(got.value().body);
  EXPECT_EQ(t.task_id, 42u);
  EXPECT_EQ(t.prompts.tensors, version->tensors);
  // Written out, it is one standard Cap'n Proto message with two segments,
  // read like any other from bytes (a file, a socket).
  auto flat = a;
  flat.flatten();
  EXPECT_TRUE(flat.is_flat());
  EXPECT_EQ(flat.words[0] & 0xFFFFFFFFu, 1u); // segment count - 1
  auto from_bytes = decode_bytes(flat.bytes(), flat.size_bytes());
  ASSERT_TRUE(from_bytes) << from_bytes.err().message();
  EXPECT_EQ(std::get<task_msg>(from_bytes.value().body).prompts.tensors, version->tensors);
  EXPECT_TRUE(a == flat);
}

TEST(codec, an_update_taken_by_the_encoder_is_referenced_and_read_in_place) {
  auto ps = large_prompts();
  auto* trained = ps.tensors[0].data.data();
  auto buf = encode(envelope{"client-3", update_msg{7, 3, 2, std::move(ps), 40, {{"loss", 0.5}}}});
  ASSERT_EQ(buf.shared.size(), 1u);
  EXPECT_EQ(reinterpret_cast<const float*>(buf.shared[0].data), trained); // moved, not copied
  auto view = decode_update_in_place(buf);
  ASSERT_TRUE(view) << view.err().message();
  EXPECT_EQ(view.value().sender, "client-3");
  EXPECT_EQ(view.value().msg.task_id, 7u);
  EXPECT_EQ(view.value().msg.num_samples, 40u);
  ASSERT_EQ(view.value().data.size(), 2u);
  EXPECT_EQ(view.value().data[0], trained);                    // read where it lies
  EXPECT_TRUE(view.value().msg.prompts.tensors[0].data.empty()); // names and shapes only
  EXPECT_EQ(view.value().msg.prompts.tensors[1].name, "small");
  EXPECT_EQ(view.value().data[1][2], 3.f);
  // The full decode reads the same values.
  auto full = decode(buf);
  ASSERT_TRUE(full);
  EXPECT_FLOAT_EQ(std::get<update_msg>(full.value().body).prompts.tensors[0].data[5], 0.005f);
}

TEST(codec, an_update_read_in_place_is_checked_like_a_decoded_one) {
  auto ps = large_prompts();
  ps.tensors[0].data[1500] = std::nanf("");
  auto bad = encode(envelope{"client-3", update_msg{7, 3, 2, ps, 40, {}}});
  auto view = decode_update_in_place(bad);
  ASSERT_FALSE(view);
  EXPECT_EQ(view.err().code, errc::non_finite);
  EXPECT_NE(view.err().text.find("tensor 'prefix' element 1500"), std::string::npos)
    << view.err().text;
  auto full = decode(bad); // the copying path says the same
  ASSERT_FALSE(full);
  EXPECT_NE(full.err().text.find("tensor 'prefix' element 1500"), std::string::npos)
    << full.err().text;
  // Half precision cannot be read in place: `unsupported`, and decode reads it.
  auto half = encode(envelope{"client-3", update_msg{7, 3, 2, large_prompts(), 40, {}}},
                     wire_dtype::f16);
  auto v16 = decode_update_in_place(half);
  ASSERT_FALSE(v16);
  EXPECT_EQ(v16.err().code, errc::unsupported);
  EXPECT_TRUE(decode(half));
  // Not an update at all.
  auto task = decode_update_in_place(encode(envelope{"server", test::make_task(large_prompts())}));
  ASSERT_FALSE(task);
  EXPECT_EQ(task.err().code, errc::unsupported);
}

TEST(codec, shared_segments_that_disagree_with_the_table_are_malformed) {
  auto buf = encode(envelope{"client-3", update_msg{7, 3, 2, large_prompts(), 40, {}}});
  ASSERT_EQ(buf.shared.size(), 1u);
  auto shorter = buf;
  shorter.shared[0].words -= 1;
  auto r = decode(shorter);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.err().code, errc::malformed);
  EXPECT_NE(r.err().text.find("segment 1 is declared with 1024 words, holds 1023"),
            std::string::npos) << r.err().text;
  auto missing = buf;
  missing.shared.clear(); // a table for two segments over one
  auto m = decode(missing);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.err().code, errc::malformed);
  auto extra = buf;
  extra.shared.push_back(buf.shared[0]);
  auto e = decode_update_in_place(extra);
  ASSERT_FALSE(e);
  EXPECT_NE(e.err().text.find("declares 2 segments, the buffer holds 3"), std::string::npos)
    << e.err().text;
}

TEST(codec, truncated_message_is_malformed) {
  auto buf = encode(envelope{"server", test::make_task(test::make_prompts({16}))});
  auto bytes = std::vector<unsigned char>(buf.bytes(), buf.bytes() + buf.size_bytes());
  auto cut_word = decode_bytes(bytes.data(), bytes.size() - 8);
  ASSERT_FALSE(cut_word.ok());
  EXPECT_EQ(cut_word.err().code, errc::malformed);
  auto cut_byte = decode_bytes(bytes.data(), bytes.size() - 3);
  ASSERT_FALSE(cut_byte.ok());
  EXPECT_NE(cut_byte.err().text.find("truncated"), std::string::npos);
}

TEST(codec, wrong_protocol_version_is_rejected_by_name) {
  auto buf = raw_task([](wire::Tensor::Builder t) { t.setName("prefix"); }, 99);
  auto r = decode(buf);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, errc::unsupported_version);
  EXPECT_NE(r.err().text.find("99"), std::string::npos) << r.err().text;
}

TEST(codec, data_length_not_matching_shape_is_a_shape_mismatch) {
  auto buf = raw_task([](wire::Tensor::Builder t) {
    t.setName("prefix");
    auto s = t.initShape(2);
    s.set(0, 2);
    s.set(1, 3);
    t.initData(5 * 4); // 5 floats for a 2x3 tensor
  });
  auto r = decode(buf);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, errc::shape_mismatch);
  EXPECT_NE(r.err().text.find("prefix"), std::string::npos) << r.err().text;
}

TEST(codec, nan_and_infinite_prompt_values_are_rejected) {
  for (float bad : {NAN, INFINITY, -INFINITY}) {
    auto ps = test::make_prompts({8});
    ps.tensors[0].data[5] = bad;
    auto r = decode(encode(envelope{"client-1", update_msg{1, 1, 0, ps, 10, {}}}));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.err().code, errc::non_finite);
    EXPECT_NE(r.err().text.find("element 5"), std::string::npos) << r.err().text;
  }
}

TEST(codec, nan_and_infinite_metrics_are_refused_by_name) {
  for (double bad : {static_cast<double>(NAN), static_cast<double>(INFINITY)}) {
    auto ps = test::make_prompts({8});
    auto r = decode(encode(envelope{"client-1",
                                    update_msg{1, 1, 0, ps, 10, {{"loss_before", 1.5}, {"loss_after", bad}}}}));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.err().code, errc::malformed);
    EXPECT_NE(r.err().text.find("metric 'loss_after' is"), std::string::npos) << r.err().text;
  }
}

TEST(codec, a_segment_table_the_stock_reader_refuses_is_malformed) {
  auto good = encode(envelope{"client-1", update_msg{1, 1, 0, test::make_prompts({8}), 10, {}}});
  // The count field holds segments - 1: 0xFFFFFFFF declares 2^32 segments
  // (a 32-bit count wraps to 0); 600 is past capnp's 512.
  for (std::uint32_t field : {0xFFFFFFFFu, 599u}) {
    auto bad = good;
    bad.words[0] = (bad.words[0] & ~std::uint64_t{0xFFFFFFFF}) | field;
    auto r = decode(bad);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.err().text.find("segment table declares"), std::string::npos) << r.err().text;
  }
  auto bad = good; // one segment whose size is past the end
  bad.words[0] = (bad.words[0] & 0xFFFFFFFFu) | (std::uint64_t{1} << 40);
  auto r = decode(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.err().text.find("words, the message holds"), std::string::npos) << r.err().text;
  EXPECT_TRUE(decode(good).ok());
}

TEST(codec, every_reject_reason_round_trips_and_the_schema_has_no_other) {
  // Wire codes come back as they went; the others (bad_scenario, io, ...)
  // go as unknown.
  EXPECT_EQ(capnp::Schema::from<wire::RejectReason>().getEnumerants().size(),
            static_cast<unsigned>(errc::outlier) + 1);
  for (int c = 0; c <= static_cast<int>(errc::empty_input); ++c) {
    auto code = static_cast<errc>(c);
    auto r = decode(encode(envelope{"aggregator", reject_msg{code, "why", 7}}));
    ASSERT_TRUE(r.ok()) << to_string(code);
    auto& got = std::get<reject_msg>(r.value().body);
    EXPECT_EQ(got.reason, code <= errc::outlier ? code : errc::unknown) << to_string(code);
    EXPECT_EQ(got.text, "why");
    EXPECT_EQ(got.task_id, 7u);
  }
}

TEST(codec, unknown_dtype_is_malformed) {
  auto buf = raw_task([](wire::Tensor::Builder t) {
    t.setName("prefix");
    t.initShape(1).set(0, 1);
    t.setDtype(static_cast<wire::DType>(9));
    t.initData(4);
  });
  auto r = decode(buf);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, errc::malformed);
  EXPECT_NE(r.err().text.find("dtype"), std::string::npos);
}

TEST(codec, huge_shape_is_too_large_not_an_allocation) {
  auto buf = raw_task([](wire::Tensor::Builder t) {
    t.setName("prefix");
    auto s = t.initShape(3);
    s.set(0, 4'000'000'000u);
    s.set(1, 4'000'000'000u);
    s.set(2, 4'000'000'000u);
  });
  EXPECT_EQ(decode(buf).err().code, errc::too_large);
}

TEST(codec, duplicate_tensor_names_are_malformed) {
  auto ps = test::make_prompts({2});
  ps.tensors.push_back(ps.tensors[0]);
  auto r = decode(encode(envelope{"s", test::make_task(ps)}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, errc::malformed);
}

TEST(codec, reserved_variants_say_unsupported) {
  capnp::MallocMessageBuilder mb;
  auto root = mb.initRoot<wire::Envelope>();
  root.setProtocolVersion(protocol_version());
  root.initBody().setResume();
  auto r = decode(to_buffer(mb));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, errc::unsupported);
  EXPECT_NE(r.err().text.find("resume"), std::string::npos);
}

TEST(codec, message_over_the_size_limit_is_too_large) {
  decode_limits small;
  small.max_bytes = 256;
  auto buf = encode(envelope{"s", test::make_task(test::make_prompts({1024}))});
  EXPECT_EQ(decode(buf, small).err().code, errc::too_large);
  EXPECT_TRUE(decode(buf).ok());
}

TEST(codec, traversal_limit_stops_oversized_reads) {
  decode_limits tight;
  tight.traversal_limit_words = 32; // far less than 1024 floats
  auto buf = encode(envelope{"s", test::make_task(test::make_prompts({1024}))});
  auto r = decode(buf, tight);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, errc::malformed);
}

} // namespace
} // namespace fedsp

namespace fedsp {
namespace {

TEST(model_transfer, chunks_reassemble_to_the_same_bytes) {
  std::string model;
  for (int i = 0; i < 10000; ++i)
    model += static_cast<char>(i * 7919 % 251);
  auto chunks = split_model("aux", model, 1024);
  ASSERT_EQ(chunks.size(), 10u);
  model_assembler in;
  for (auto it = chunks.rbegin(); it != chunks.rend(); ++it) { // any order
    auto wire = decode(encode(envelope{"server", *it}));
    ASSERT_TRUE(wire.ok());
    ASSERT_FALSE(in.add(std::get<model_chunk_msg>(wire.value().body)));
  }
  EXPECT_TRUE(in.complete());
  EXPECT_EQ(in.bytes(), model);
  // The client moves the file into its session's build and keeps no copy.
  EXPECT_EQ(in.take_bytes(), model);
  EXPECT_TRUE(in.bytes().empty());
  EXPECT_TRUE(in.complete());
  EXPECT_EQ(in.add(chunks[0])->code, errc::duplicate); // a late chunk changes nothing
}

TEST(model_transfer, corrupt_duplicate_and_foreign_chunks_are_refused) {
  std::string model(5000, 'x');
  auto chunks = split_model("aux", model, 1000);
  model_assembler in;
  ASSERT_FALSE(in.add(chunks[0]));
  EXPECT_EQ(in.add(chunks[0])->code, errc::duplicate);
  auto foreign = split_model("other", model, 1000)[1];
  EXPECT_NE(in.add(foreign)->text.find("does not belong"), std::string::npos);
  auto flipped = chunks[1];
  flipped.data[10] = 'y'; // one flipped byte: caught by the checksum at the end
  ASSERT_FALSE(in.add(flipped));
  for (std::size_t i = 2; i + 1 < chunks.size(); ++i)
    ASSERT_FALSE(in.add(chunks[i]));
  auto err = in.add(chunks.back());
  ASSERT_TRUE(err.has_value());
  EXPECT_NE(err->text.find("CRC-32"), std::string::npos);
  auto oversized = split_model("aux", model, 1000);
  model_assembler in2;
  oversized[0].data += "extra";
  ASSERT_FALSE(in2.add(oversized[0]));
  for (std::size_t i = 1; i < oversized.size(); ++i)
    if (auto e = in2.add(oversized[i])) {
      EXPECT_NE(e->text.find("more bytes"), std::string::npos);
      return;
    }
  ADD_FAILURE() << "an oversized model was accepted";
}

TEST(model_transfer, crc32_matches_the_standard_check_value) {
  EXPECT_EQ(crc32("123456789", 9), 0xCBF43926u); // the CRC-32/IEEE check value
  EXPECT_EQ(crc32("", 0), 0u);
  // The table-sliced version against the textbook bit-at-a-time definition,
  // for every length up to 100 at every alignment.
  auto bitwise = [](const unsigned char* p, std::size_t n) {
    std::uint32_t c = 0xFFFFFFFFu;
    for (std::size_t i = 0; i < n; ++i) {
      c ^= p[i];
      for (int k = 0; k < 8; ++k)
        c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xFFFFFFFFu;
  };
  std::vector<unsigned char> bytes(128);
  for (std::size_t i = 0; i < bytes.size(); ++i)
    bytes[i] = static_cast<unsigned char>(i * 131 + 7);
  for (std::size_t off = 0; off < 8; ++off)
    for (std::size_t n = 0; n <= 100; ++n)
      ASSERT_EQ(crc32(bytes.data() + off, n), bitwise(bytes.data() + off, n)) << off << " " << n;
}

} // namespace
} // namespace fedsp
