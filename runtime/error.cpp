#include "runtime/error.hpp"

namespace fedsp {

const char* to_string(errc code) {
  switch (code) {
    case errc::unknown: return "unknown";
    case errc::malformed: return "malformed";
    case errc::unsupported_version: return "unsupported_version";
    case errc::unsupported: return "unsupported";
    case errc::unknown_sender: return "unknown_sender";
    case errc::unknown_task: return "unknown_task";
    case errc::wrong_client: return "wrong_client";
    case errc::duplicate: return "duplicate";
    case errc::shape_mismatch: return "shape_mismatch";
    case errc::non_finite: return "non_finite";
    case errc::future_version: return "future_version";
    case errc::task_closed: return "task_closed";
    case errc::too_large: return "too_large";
    case errc::outlier: return "outlier";
    case errc::bad_scenario: return "bad_scenario";
    case errc::bad_argument: return "bad_argument";
    case errc::io: return "io";
    case errc::empty_input: return "empty_input";
  }
  return "unknown";
}

std::string error::message() const {
  return std::string(to_string(code)) + ": " + text;
}

} // namespace fedsp
