#include "runtime/events.hpp"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace fedsp {

event_log::event_log(const std::string& path, bool append)
  : opened_(std::chrono::steady_clock::now()), path_(path) {
  if (append) { // cut a torn last line (the process died mid-write)
    std::error_code ec;
    if (std::filesystem::exists(path, ec)) {
      std::ifstream in(path, std::ios::binary);
      std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      auto keep = text.rfind('\n');
      auto size = keep == std::string::npos ? 0 : keep + 1;
      if (size != text.size())
        std::filesystem::resize_file(path, size, ec);
    }
  }
  file_ = std::fopen(path.c_str(), append ? "a" : "w");
  if (file_ == nullptr)
    throw std::runtime_error("cannot open event log '" + path
                             + "': " + std::strerror(errno));
  flusher_ = std::thread([this] {
    std::unique_lock<std::mutex> g(mtx_);
    while (!closing_) {
      wake_.wait_for(g, std::chrono::milliseconds(50));
      if (dirty_) {
        check_(std::fflush(file_));
        dirty_ = false;
      }
    }
  });
}

event_log::~event_log() {
  {
    std::lock_guard<std::mutex> g(mtx_);
    closing_ = true;
  }
  wake_.notify_all();
  if (flusher_.joinable())
    flusher_.join();
  if (file_ != nullptr)
    std::fclose(file_);
}

void event_log::check_(int rc) {
  if (rc == 0 && std::ferror(file_) == 0)
    return;
  auto why = std::string(std::strerror(errno != 0 ? errno : EIO));
  std::clearerr(file_);
  if (failed_)
    return;
  failed_ = true;
  if (on_error_)
    on_error_("cannot write " + path_ + ": " + why);
}

void event_log::write(const std::string& type, double t, const json& fields, bool now) {
  // {"type": ..., "t": ..., <fields>, "wall_ms": ..., "wall_elapsed_s": ...},
  // spliced as text (no copy of the fields).
  std::string line = "{\"type\":\"";
  json_escape(type, line);
  line += "\",\"t\":";
  json(t).dump_to(line);
  if (fields.is_object() && !fields.as_object().empty()) {
    std::string f;
    fields.dump_to(f);
    line += ',';
    line.append(f, 1, f.size() - 2);
  }
  auto wall = std::chrono::system_clock::now().time_since_epoch();
  line += ",\"wall_ms\":";
  json(static_cast<double>(std::chrono::duration_cast<std::chrono::milliseconds>(wall).count()))
    .dump_to(line);
  std::chrono::duration<double> since = std::chrono::steady_clock::now() - opened_;
  line += ",\"wall_elapsed_s\":";
  json(since.count()).dump_to(line);
  line += "}\n";
  std::lock_guard<std::mutex> guard(mtx_);
  errno = 0;
  auto wrote = std::fwrite(line.data(), 1, line.size(), file_);
  check_(wrote == line.size() ? 0 : -1);
  if (now) {
    check_(std::fflush(file_));
    dirty_ = false;
  } else {
    dirty_ = true; // (the flusher writes it out within 50 ms)
  }
  ++count_;
}

void event_log::flush() {
  std::lock_guard<std::mutex> guard(mtx_);
  check_(std::fflush(file_));
  dirty_ = false;
}

std::size_t event_log::count() const {
  std::lock_guard<std::mutex> guard(mtx_);
  return count_;
}

} // namespace fedsp
