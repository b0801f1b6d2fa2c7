// The run's event log: events.jsonl, one JSON object per line.
//
// Every event has `type`, `t` (seconds on the run clock: see clock.hpp) and
// the wall-clock fields `wall_ms` (milliseconds since the Unix epoch) and
// `wall_elapsed_s` (seconds since the log was opened). Everything else is
// per type (README "Outputs"). Thread-safe: actors on different threads
// write to one log; each line is written whole; a background thread flushes
// what was written within 50 ms (so a reader tailing the file lags by at
// most that, even when the run is idle), and the log flushes when it closes.
#pragma once

#include <chrono>
#include <cstdio>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <string>

#include "runtime/json.hpp"

namespace fedsp {

class event_log {
public:
  /// Opens (truncating) `path`; throws std::runtime_error if it cannot.
  /// With `append` (resuming a run), keeps what is there, less a last line
  /// left incomplete by a crash.
  explicit event_log(const std::string& path, bool append = false);
  ~event_log();

  event_log(const event_log&) = delete;
  event_log& operator=(const event_log&) = delete;

  /// Writes one event: {"type": type, "t": t, <fields...>, "wall_ms": ...}.
  /// With `now`, it is handed to the kernel (write(2)) before this returns,
  /// so it survives the process being killed (the `update` event before
  /// its Ack: docs/faults.md "The durability contract").
  void write(const std::string& type, double t, const json& fields, bool now = false);

  /// Called once, with a message naming the file, the first time a write
  /// or flush fails (a full disk): the run stops on it. Set before writing.
  void on_error(std::function<void(const std::string&)> f) { on_error_ = std::move(f); }

  /// Writes out what is buffered.
  void flush();

  /// Events written so far.
  std::size_t count() const;

private:
  mutable std::mutex mtx_;
  std::FILE* file_ = nullptr;
  std::size_t count_ = 0;
  std::chrono::steady_clock::time_point opened_;
  bool dirty_ = false;               // written since the last flush
  bool failed_ = false;              // a write or flush failed (reported once)
  std::string path_;
  std::function<void(const std::string&)> on_error_;
  void check_(int rc);               // (under mtx_) reports a failed write
  bool closing_ = false;
  std::condition_variable wake_;
  std::thread flusher_;
};

} // namespace fedsp
