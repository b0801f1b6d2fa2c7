// `fedsp run --dump-messages DIR`: every federation message a run encodes is
// also written to DIR as one file, `<seq>-<kind>-<sender>.bin`, holding the
// exact wire bytes. `fedsp inspect` and `capnp decode` read them.
#pragma once

#include <atomic>
#include <string>

#include "runtime/codec.hpp"

namespace fedsp {

class message_dump {
public:
  /// Creates `dir` if needed; throws std::runtime_error if it cannot.
  explicit message_dump(std::string dir);

  /// Writes one message; returns the file's path ("" if the write failed).
  std::string write(const char* kind, const std::string& sender,
                    const wire_buffer& buf);

  std::size_t count() const { return seq_.load(); }

private:
  std::string dir_;
  std::atomic<std::size_t> seq_{0};
};

} // namespace fedsp
