// Typed errors and a small result type. Failures are data: every boundary of
// the runtime (decoder, validator, scenario parser, aggregation) returns one of
// these instead of throwing, so callers decide what a failure means.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace fedsp {

// -- error codes ---------------------------------------------------------------

/// Why something was refused. The first block mirrors `RejectReason` in
/// schemas/federation.capnp one to one (same order), so a validation failure
/// turns into a wire rejection without a lookup table.
enum class errc {
  unknown = 0,
  malformed,
  unsupported_version,
  unsupported,
  unknown_sender,
  unknown_task,
  wrong_client,
  duplicate,
  shape_mismatch,
  non_finite,
  future_version,
  task_closed,
  too_large,
  outlier,
  // -- not on the wire ---------------------------------------------------------
  bad_scenario,
  bad_argument,
  io,
  empty_input,
};

/// Stable lower-case name of a code, as used in logs and events.jsonl.
const char* to_string(errc code);

struct error {
  errc code = errc::unknown;
  std::string text;

  /// "<code>: <text>", for log lines and CLI messages.
  std::string message() const;
};

// -- result --------------------------------------------------------------------

/// Either a value or an error. Deliberately tiny: `ok()`, `value()`, `err()`.
template <class T>
class result {
public:
  result(T value) : data_(std::move(value)) {}   // NOLINT: implicit by design
  result(error err) : data_(std::move(err)) {}   // NOLINT: implicit by design

  bool ok() const noexcept { return data_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  T& value() & { return std::get<0>(data_); }
  const T& value() const& { return std::get<0>(data_); }
  T&& value() && { return std::get<0>(std::move(data_)); }
  const error& err() const { return std::get<1>(data_); }

private:
  std::variant<T, error> data_;
};

} // namespace fedsp
