#include "runtime/events.hpp"

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace fedsp {

event_log::event_log(const std::string& path)
  : opened_(std::chrono::steady_clock::now()) {
  file_ = std::fopen(path.c_str(), "w");
  if (file_ == nullptr)
    throw std::runtime_error("cannot open event log '" + path
                             + "': " + std::strerror(errno));
}

event_log::~event_log() {
  if (file_ != nullptr)
    std::fclose(file_);
}

void event_log::write(const std::string& type, double t, const json& fields) {
  json ev = json::object{};
  ev.set("type", type);
  ev.set("t", t);
  if (fields.is_object())
    for (auto& [k, v] : fields.as_object())
      ev.set(k, v);
  auto wall = std::chrono::system_clock::now().time_since_epoch();
  ev.set("wall_ms", static_cast<double>(
                      std::chrono::duration_cast<std::chrono::milliseconds>(wall)
                        .count()));
  std::chrono::duration<double> since = std::chrono::steady_clock::now() - opened_;
  ev.set("wall_elapsed_s", since.count());
  std::string line = ev.dump();
  line += '\n';
  std::lock_guard<std::mutex> guard(mtx_);
  std::fwrite(line.data(), 1, line.size(), file_);
  std::fflush(file_);
  ++count_;
}

std::size_t event_log::count() const {
  std::lock_guard<std::mutex> guard(mtx_);
  return count_;
}

} // namespace fedsp
