// The files a crash must not corrupt: atomic writes, the write-ahead log and
// checkpoints, including what a crash leaves behind (torn records, truncated
// files) and what a disk error or a careless user might.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "runtime/durable.hpp"
#include "tests/runtime/test_util.hpp"

namespace fedsp {
namespace {

namespace fs = std::filesystem;

using test::temp_dir;

std::string segment(const std::string& dir, int n) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s/wal-%08d.log", dir.c_str(), n);
  return buf;
}

TEST(AtomicWrite, ReplacesTheWholeFileAndLeavesNoTemporary) {
  temp_dir d;
  auto path = d.path + "/state.bin";
  ASSERT_FALSE(write_file_atomic(path, "first version"));
  ASSERT_FALSE(write_file_atomic(path, "second"));
  EXPECT_EQ(read_file_bytes(path).value(), "second");
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST(AtomicWrite, AnUnwritableFolderIsAnIoErrorNamingThePath) {
  auto err = write_file_atomic("/nonexistent-folder/x.bin", "data");
  ASSERT_TRUE(err);
  EXPECT_EQ(err->code, errc::io);
  EXPECT_NE(err->text.find("/nonexistent-folder/x.bin.tmp"), std::string::npos);
}

TEST(RecordLog, RecordsComeBackInOrderAcrossSegments) {
  temp_dir d;
  auto log = record_log::open(d.path, false).value();
  ASSERT_FALSE(log->append("one"));
  ASSERT_FALSE(log->append(std::string(100000, 'x')));
  EXPECT_EQ(log->rotate().value(), 1u);
  ASSERT_FALSE(log->append("three"));
  auto all = read_log(d.path, 0).value();
  ASSERT_EQ(all.records.size(), 3u);
  EXPECT_EQ(all.records[0], "one");
  EXPECT_EQ(all.records[1].size(), 100000u);
  EXPECT_EQ(all.records[2], "three");
  EXPECT_TRUE(all.notes.empty());
  // Segments at or below the mark are consumed.
  auto after = read_log(d.path, 1).value();
  ASSERT_EQ(after.records.size(), 1u);
  EXPECT_EQ(after.records[0], "three");
}

TEST(RecordLog, ReopeningStartsAFreshSegmentAboveTheOld) {
  temp_dir d;
  {
    auto log = record_log::open(d.path, true).value();
    ASSERT_FALSE(log->append("before the crash"));
  }
  auto log = record_log::open(d.path, false).value();
  EXPECT_EQ(log->segment(), 2u);
  ASSERT_FALSE(log->append("after"));
  auto all = read_log(d.path, 0).value();
  ASSERT_EQ(all.records.size(), 2u);
  EXPECT_EQ(all.records[0], "before the crash");
}

TEST(RecordLog, ATornLastRecordIsDroppedWithANote) {
  temp_dir d;
  {
    auto log = record_log::open(d.path, false).value();
    ASSERT_FALSE(log->append("kept"));
    ASSERT_FALSE(log->append("torn by the crash"));
  }
  auto path = segment(d.path, 1);
  fs::resize_file(path, fs::file_size(path) - 5); // the process died mid-write
  // A new process appends after it in a new segment: still fine.
  {
    auto log = record_log::open(d.path, false).value();
    ASSERT_FALSE(log->append("next"));
  }
  auto all = read_log(d.path, 0).value();
  ASSERT_EQ(all.records.size(), 2u);
  EXPECT_EQ(all.records[0], "kept");
  EXPECT_EQ(all.records[1], "next");
  ASSERT_EQ(all.notes.size(), 1u);
  EXPECT_NE(all.notes[0].find("torn record"), std::string::npos);
}

TEST(RecordLog, DamageBeforeTheEndIsAnErrorNamingSegmentAndOffset) {
  temp_dir d;
  {
    auto log = record_log::open(d.path, false).value();
    ASSERT_FALSE(log->append("first record"));
    ASSERT_FALSE(log->append("second record"));
  }
  auto path = segment(d.path, 1);
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(14); // inside the first payload
    f.put('#');
  }
  auto got = read_log(d.path, 0);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.err().code, errc::malformed);
  EXPECT_NE(got.err().text.find("wal-00000001.log at byte 0"), std::string::npos);
  EXPECT_NE(got.err().text.find("checksum"), std::string::npos);
}

TEST(RecordLog, DroppingSegmentsDeletesOnlyThoseAtOrBelowTheMark) {
  temp_dir d;
  auto log = record_log::open(d.path, false).value();
  ASSERT_FALSE(log->append("a"));
  log->rotate().value();
  ASSERT_FALSE(log->append("b"));
  log->rotate().value();
  drop_log_segments(d.path, 1);
  EXPECT_FALSE(fs::exists(segment(d.path, 1)));
  EXPECT_TRUE(fs::exists(segment(d.path, 2)));
  EXPECT_EQ(read_log(d.path, 0).value().records, std::vector<std::string>{"b"});
}

TEST(RecordLog, AMissingFolderIsAnEmptyLog) {
  auto got = read_log("/tmp/fedsp-no-such-log-folder", 0);
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(got.value().records.empty());
}

checkpoint_data sample() {
  checkpoint_data ck;
  ck.state = json::object{{"version", 7}, {"rounds", json::array{1, 2}}};
  ck.prompts.emplace_back("global", test::make_prompts({2, 3}, 0.5f, 0.25f, 7));
  ck.prompts.emplace_back("client-3", test::make_prompts({2, 3}, -1.f, 0.5f, 7));
  ck.blobs.emplace_back("optimizer", std::string("\0\1binary\xff", 9));
  return ck;
}

TEST(Checkpoint, RoundTripsStateAndPromptsExactly) {
  auto ck = sample();
  auto back = decode_checkpoint(encode_checkpoint(ck), "mem").value();
  EXPECT_EQ(back.state.dump(), ck.state.dump());
  ASSERT_EQ(back.prompts.size(), 2u);
  EXPECT_EQ(back.prompts[0].first, "global");
  EXPECT_EQ(back.prompts[0].second, ck.prompts[0].second);
  EXPECT_EQ(back.prompts[1].first, "client-3");
  EXPECT_EQ(back.prompts[1].second, ck.prompts[1].second);
  ASSERT_EQ(back.blobs.size(), 1u);
  EXPECT_EQ(back.blobs[0], ck.blobs[0]);
}

TEST(Checkpoint, EveryTruncationIsRefused) {
  auto bytes = encode_checkpoint(sample());
  for (std::size_t n = 0; n < bytes.size(); n += 7) {
    auto got = decode_checkpoint(std::string_view(bytes).substr(0, n), "ck.bin");
    ASSERT_FALSE(got.ok()) << "accepted " << n << " of " << bytes.size() << " bytes";
    EXPECT_NE(got.err().text.find("ck.bin"), std::string::npos);
  }
}

TEST(Checkpoint, AFlippedByteIsAChecksumMismatch) {
  auto bytes = encode_checkpoint(sample());
  bytes[bytes.size() / 2] ^= 0x40;
  auto got = decode_checkpoint(bytes, "ck.bin");
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.err().text.find("checksum mismatch"), std::string::npos);
}

TEST(Checkpoint, OtherFilesAreNotCheckpoints) {
  auto got = decode_checkpoint("{\"version\": 3}", "ck.bin");
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.err().text.find("not a fedsp checkpoint"), std::string::npos);
}

} // namespace
} // namespace fedsp
