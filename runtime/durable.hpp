// What survives a crash of a run: whole files written atomically, the
// aggregator's write-ahead log of accepted updates, and the server's
// checkpoints (docs/faults.md "Durability").
//
// - write_file_atomic: a temporary file beside the target, fsync, rename over
//   the target, fsync of the folder. A reader sees the old file or the new
//   one, never a mix, whatever the moment the process dies.
// - record_log: numbered segment files `wal-<n>.log` of framed records
//   [magic u32][length u32][crc32 u32][payload]. append() hands the whole
//   record to the kernel (write(2)) before it returns, so a record appended
//   before an acknowledgement survives the process being killed; with
//   `sync_each` it is also on the disk (fdatasync) and survives power loss.
//   rotate() starts the next segment; segments at or below a checkpoint's
//   mark are consumed and deleted.
// - read_log: every record of the segments above a mark, in order. A crash
//   mid-append leaves a torn last record (cut short, nothing valid after
//   it): it is dropped (it was never acknowledged) and reported. Any other
//   damage (a bad checksum on a whole record, bad bytes with good records
//   after them) is an error naming the segment and offset, or, asked to
//   salvage, dropped and counted.
// - checkpoints: a JSON state plus named prompt sets (encoded as federation
//   messages, so they are validated like any message) and named blobs, with
//   a trailing CRC-32; a truncated or altered file is refused with a reason.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runtime/error.hpp"
#include "runtime/files.hpp"
#include "runtime/json.hpp"
#include "runtime/prompt_set.hpp"

namespace fedsp {

/// Replaces `path` with `bytes` atomically (see above).
std::optional<error> write_file_atomic(const std::string& path, std::string_view bytes);

/// Reads a whole file (a regular one, at most `limit` bytes: see
/// runtime/files.hpp). Errors: `io` or `too_large` naming the file.
result<std::string> read_file_bytes(const std::string& path,
                                    std::uint64_t limit = limits::checkpoint_bytes);

class record_log {
public:
  /// Opens `dir` (created if missing) for appending to a new segment
  /// numbered above every segment already there.
  static result<std::unique_ptr<record_log>> open(const std::string& dir, bool sync_each);
  ~record_log();
  record_log(const record_log&) = delete;
  record_log& operator=(const record_log&) = delete;

  /// Appends one record. Errors: `io` (the record is then not in the log).
  std::optional<error> append(std::string_view payload) { return append({payload}); }
  /// The same, the record being the concatenation of `parts` (written with
  /// one writev, without copying them together).
  std::optional<error> append(std::initializer_list<std::string_view> parts);
  std::optional<error> append(const std::vector<std::string_view>& parts);
  /// The segment being written.
  std::uint64_t segment() const { return segment_; }
  /// Records appended to the current segment.
  std::size_t records() const { return records_; }
  /// Closes the current segment and starts the next; returns
  /// the closed segment's number. If the next cannot be opened, appends
  /// fail (`io`) from then on: nothing is acknowledged that is not logged.
  result<std::uint64_t> rotate();

private:
  record_log(std::string dir, bool sync_each) : dir_(std::move(dir)), sync_each_(sync_each) {}
  std::optional<error> open_segment(std::uint64_t n);
  std::string dir_;
  bool sync_each_ = false;
  int fd_ = -1;
  std::uint64_t segment_ = 0;
  std::size_t records_ = 0;
};

struct log_contents {
  std::vector<std::string> records;  // payloads, oldest first
  std::vector<std::string> notes;    // torn tails (and salvaged damage) dropped
  std::uint64_t last_segment = 0;    // the highest segment found (0: none)
  std::size_t damaged = 0;           // damaged stretches dropped (salvage)
};

/// The records of `dir`'s segments numbered above `after` (a missing folder
/// is an empty log). Errors: `io`; `malformed` naming the segment and
/// offset for a damaged record that is not a torn tail, unless `salvage`:
/// then it is skipped to the next good record and counted.
result<log_contents> read_log(const std::string& dir, std::uint64_t after, bool salvage = false);

/// Deletes the segments numbered `through` and below.
void drop_log_segments(const std::string& dir, std::uint64_t through);

struct checkpoint_data {
  json state = json::object{};
  std::vector<std::pair<std::string, prompt_set>> prompts; // named prompt sets
  std::vector<std::pair<std::string, std::string>> blobs;  // named opaque bytes
                                                           // (an optimizer's state)
};

std::string encode_checkpoint(const checkpoint_data& ck);
/// Errors (`malformed`, naming `where`): wrong magic, truncated, checksum
/// mismatch, a prompt set that does not decode.
result<checkpoint_data> decode_checkpoint(std::string_view bytes, const std::string& where);

} // namespace fedsp
