#include "runtime/files.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace fedsp {

namespace {

std::string size_text(std::uint64_t n) {
  if (n >= limits::GiB && n % limits::GiB == 0)
    return std::to_string(n / limits::GiB) + " GiB";
  if (n >= limits::MiB)
    return std::to_string(n / limits::MiB) + " MiB";
  return std::to_string(n) + " bytes";
}

} // namespace

std::optional<error> check_regular_file(const std::string& path, std::uint64_t limit,
                                        const std::string& what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      return error{errc::io, what + " '" + path + "' does not exist"};
    return error{errc::io, "cannot read " + what + " '" + path + "': " + std::strerror(errno)};
  }
  if (!S_ISREG(st.st_mode)) {
    auto kind = S_ISDIR(st.st_mode)    ? "a folder"
                : S_ISFIFO(st.st_mode) ? "a FIFO"
                : S_ISCHR(st.st_mode)  ? "a character device"
                : S_ISBLK(st.st_mode)  ? "a block device"
                : S_ISSOCK(st.st_mode) ? "a socket"
                                       : "not a regular file";
    return error{errc::io, what + " '" + path + "' is " + kind + ", not a regular file"};
  }
  if (static_cast<std::uint64_t>(st.st_size) > limit)
    return error{errc::too_large, what + " '" + path + "' is " + size_text(st.st_size)
                                    + "; the limit is " + size_text(limit)
                                    + " (docs/limits.md)"};
  if (::access(path.c_str(), R_OK) != 0)
    return error{errc::io, "cannot read " + what + " '" + path + "': " + std::strerror(errno)};
  return std::nullopt;
}

result<std::string> read_bounded_file(const std::string& path, std::uint64_t limit,
                                      const std::string& what) {
  if (auto err = check_regular_file(path, limit, what))
    return *err;
  // O_NONBLOCK: a file swapped for a FIFO since the check does not block.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0)
    return error{errc::io, "cannot open " + what + " '" + path + "': " + std::strerror(errno)};
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return error{errc::io, what + " '" + path + "' is not a regular file"};
  }
  std::string out;
  out.reserve(static_cast<std::size_t>(st.st_size));
  char buf[1 << 16];
  for (;;) {
    auto r = ::read(fd, buf, sizeof buf);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      auto e = error{errc::io, "cannot read " + what + " '" + path + "': " + std::strerror(errno)};
      ::close(fd);
      return e;
    }
    if (r == 0)
      break;
    if (out.size() + static_cast<std::size_t>(r) > limit) { // it grew since the check
      ::close(fd);
      return error{errc::too_large, what + " '" + path + "' grew past the limit of "
                                      + size_text(limit) + " while it was read"};
    }
    out.append(buf, static_cast<std::size_t>(r));
  }
  ::close(fd);
  return out;
}

result<std::ifstream> open_bounded_file(const std::string& path, std::uint64_t limit,
                                        const std::string& what) {
  if (auto err = check_regular_file(path, limit, what))
    return *err;
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return error{errc::io, "cannot read " + what + " '" + path + "'"};
  return in;
}

namespace {

/// read_line's work; `where` is called only for the error.
template <class Where>
result<bool> bounded_line(std::istream& in, std::string& line, std::uint64_t max, Where where) {
  line.clear();
  auto* buf = in.rdbuf();
  if (buf == nullptr)
    return false;
  bool any = false;
  for (;;) {
    auto c = buf->sbumpc();
    if (c == std::char_traits<char>::eof()) {
      in.setstate(std::ios::eofbit);
      return any;
    }
    any = true;
    if (c == '\n')
      return true;
    if (line.size() >= max)
      return error{errc::too_large, where() + ": a line longer than " + size_text(max)
                                      + " (docs/limits.md)"};
    line.push_back(static_cast<char>(c));
  }
}

} // namespace

result<bool> read_line(std::istream& in, std::string& line, std::uint64_t max,
                       const std::string& where) {
  return bounded_line(in, line, max, [&] { return where; });
}

bool line_reader::next(std::string& line) {
  if (err_)
    return false;
  auto n = n_ + 1;
  auto got = bounded_line(in_, line, max_, [&] { return path_ + ":" + std::to_string(n); });
  if (!got) {
    err_ = got.err();
    return false;
  }
  if (got.value())
    n_ = n;
  return got.value();
}

} // namespace fedsp
