// Reading the files a user or a peer hands fedsp, bounded: every entry
// point (scenario, task files, run.json, events.jsonl, messages,
// checkpoints, log segments) checks that its file is a regular file no
// larger than its limit before reading a byte of it, so /dev/zero, a FIFO
// or a 3 GB file is refused at once with a message naming the file. The
// limits are here and only here; docs/limits.md lists them.
#pragma once

#include <cstdint>
#include <fstream>
#include <istream>
#include <optional>
#include <string>

#include "runtime/error.hpp"

namespace fedsp {

namespace limits {
inline constexpr std::uint64_t MiB = 1ull << 20, GiB = 1ull << 30;
inline constexpr std::uint64_t scenario_bytes = 1 * MiB;    // a scenario (YAML)
inline constexpr std::uint64_t run_record_bytes = 16 * MiB; // run.json (holds the scenario)
inline constexpr std::uint64_t summary_bytes = 64 * MiB;    // summary.json
inline constexpr std::uint64_t task_file_bytes = 4 * GiB;   // a task or corpus JSONL file
inline constexpr std::uint64_t events_bytes = 64 * GiB;     // events.jsonl (read a line at a time)
inline constexpr std::uint64_t line_bytes = 64 * MiB;       // one line of any JSONL file
inline constexpr std::uint64_t message_bytes = 1 * GiB + 1 * MiB; // an encoded message (fedsp inspect)
inline constexpr std::uint64_t checkpoint_bytes = 16 * GiB; // checkpoint.bin
inline constexpr std::uint64_t log_segment_bytes = 16 * GiB; // one wal-<n>.log
inline constexpr std::uint64_t model_bytes = 64 * GiB;      // a .safetensors file
inline constexpr std::uint64_t vocabulary_bytes = 256 * MiB; // vocab.json, merges.txt
inline constexpr std::uint64_t token_bytes = 4096;          // a join token file
} // namespace limits

/// Nothing when `path` is a regular file of at most `limit` bytes; else
/// an error (`io`, or `too_large`) naming `what` and the path: missing,
/// unreadable, a folder, a device, a FIFO, a socket, too large. Never
/// blocks (a FIFO is not opened).
std::optional<error> check_regular_file(const std::string& path, std::uint64_t limit,
                                        const std::string& what);

/// The whole file, after check_regular_file. Errors name `what` and the path.
result<std::string> read_bounded_file(const std::string& path, std::uint64_t limit,
                                      const std::string& what);

/// An input stream on the file, after check_regular_file.
result<std::ifstream> open_bounded_file(const std::string& path, std::uint64_t limit,
                                        const std::string& what);

/// std::getline with a bound: true with a line, false at the end; a line
/// longer than `max` bytes is an error (`too_large`) naming `where` (the
/// caller's "FILE:LINE"), the rest of it unread.
result<bool> read_line(std::istream& in, std::string& line, std::uint64_t max,
                       const std::string& where);

/// The lines of a file, each bounded as read_line bounds it, numbered from
/// 1, as std::getline reads them:
///     line_reader lines(in, path);
///     while (lines.next(line)) { ... lines.number() ... }
///     if (auto err = lines.failure()) return *err;
/// next() is false at the end and at an overlong line, which failure() then
/// names as "PATH:LINE" (the name is built only then).
class line_reader {
public:
  line_reader(std::istream& in, std::string path, std::uint64_t max = limits::line_bytes)
    : in_(in), path_(std::move(path)), max_(max) {}
  bool next(std::string& line);
  std::size_t number() const { return n_; }
  const std::optional<fedsp::error>& failure() const { return err_; }

private:
  std::istream& in_;
  std::string path_;
  std::uint64_t max_;
  std::size_t n_ = 0;
  std::optional<fedsp::error> err_;
};

} // namespace fedsp
