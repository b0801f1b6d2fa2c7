// Bounded reads (runtime/files.hpp): what every entry point refuses before
// reading, and what it reads.
#include "runtime/files.hpp"
#include "tests/runtime/test_util.hpp"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace fedsp {
namespace {

namespace fs = std::filesystem;

using test::temp_dir;

bool says(const std::optional<error>& e, const std::string& text) {
  return e && e->text.find(text) != std::string::npos;
}

TEST(BoundedFiles, ARegularFileWithinTheLimitIsReadWhole) {
  temp_dir d;
  auto p = d.path + "/a.txt";
  std::ofstream(p) << "hello\nworld";
  EXPECT_FALSE(check_regular_file(p, 11, "text"));
  EXPECT_EQ(read_bounded_file(p, 11, "text").value(), "hello\nworld");
}

TEST(BoundedFiles, OneByteOverTheLimitIsRefusedBeforeReading) {
  temp_dir d;
  auto p = d.path + "/a.txt";
  std::ofstream(p) << "hello\nworld";
  auto got = read_bounded_file(p, 10, "text");
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.err().code, errc::too_large);
  EXPECT_NE(got.err().text.find("text '" + p + "' is 11 bytes; the limit is 10 bytes"),
            std::string::npos);
}

TEST(BoundedFiles, DevicesFifosAndFoldersAreRefusedWithoutBlocking) {
  temp_dir d;
  auto fifo = d.path + "/pipe";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_TRUE(says(check_regular_file(fifo, 1 << 20, "scenario"), "is a FIFO, not a regular file"));
  EXPECT_FALSE(read_bounded_file(fifo, 1 << 20, "scenario").ok()); // returns: never opened
  EXPECT_TRUE(says(check_regular_file("/dev/zero", 1 << 20, "message file"),
                   "'/dev/zero' is a character device"));
  EXPECT_TRUE(says(check_regular_file(d.path, 1 << 20, "task file"), "is a folder"));
  EXPECT_TRUE(says(check_regular_file(d.path + "/none", 1, "run record"),
                   "run record '" + d.path + "/none' does not exist"));
}

TEST(BoundedFiles, ASparseHugeFileIsRefusedAtOnce) {
  temp_dir d;
  auto p = d.path + "/huge";
  {
    std::ofstream f(p);
  }
  fs::resize_file(p, 3ull << 30); // sparse: no disk used
  auto got = read_bounded_file(p, limits::message_bytes, "message file");
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.err().text.find("is 3 GiB; the limit is"), std::string::npos);
}

TEST(BoundedLines, LinesAreReadWithOrWithoutAFinalNewline) {
  std::istringstream in("a\n\nbc");
  std::string line;
  std::vector<std::string> got;
  for (;;) {
    auto r = read_line(in, line, 10, "f:1");
    ASSERT_TRUE(r.ok());
    if (!r.value())
      break;
    got.push_back(line);
  }
  EXPECT_EQ(got, (std::vector<std::string>{"a", "", "bc"}));
}

TEST(BoundedLines, ALineOverTheBoundIsAnErrorNamingWhere) {
  std::istringstream in("short\n" + std::string(100, 'x') + "\n");
  std::string line;
  ASSERT_TRUE(read_line(in, line, 10, "f.jsonl:1").value());
  auto r = read_line(in, line, 10, "f.jsonl:2");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, errc::too_large);
  EXPECT_NE(r.err().text.find("f.jsonl:2: a line longer than 10 bytes"), std::string::npos);
}

} // namespace
} // namespace fedsp
