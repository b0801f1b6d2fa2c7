#include "runtime/messages.hpp"

namespace fedsp {

double metric_or(const metric_list& ms, const std::string& name,
                 double fallback) {
  for (auto& [k, v] : ms)
    if (k == name)
      return v;
  return fallback;
}

const char* kind_name(const message_body& body) {
  static constexpr const char* names[] = {
    "join",        "welcome",   "task",      "update", "eval_request",
    "eval_report", "reject",    "heartbeat", "ack",    "shutdown"};
  return names[body.index()];
}

} // namespace fedsp
