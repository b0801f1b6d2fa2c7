#include "runtime/durable.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include "runtime/codec.hpp"

namespace fedsp {

namespace fs = std::filesystem;

namespace {

constexpr std::uint32_t record_magic = 0x4c415746; // "FWAL" little-endian
constexpr std::size_t record_header = 12;
constexpr char checkpoint_magic[8] = {'F', 'E', 'D', 'S', 'P', 'C', 'K', '1'};

error io_error(const std::string& what, const std::string& path) {
  return error{errc::io, what + " '" + path + "': " + std::strerror(errno)};
}

std::optional<error> write_all(int fd, const char* p, std::size_t n, const std::string& path) {
  while (n > 0) {
    auto w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return io_error("cannot write", path);
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return std::nullopt;
}

void fsync_dir(const std::string& dir) {
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

template <class T> void put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}

template <class T> bool get(std::string_view& in, T& v) {
  if (in.size() < sizeof v)
    return false;
  std::memcpy(&v, in.data(), sizeof v);
  in.remove_prefix(sizeof v);
  return true;
}

std::string segment_name(std::uint64_t n) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "wal-%08llu.log", static_cast<unsigned long long>(n));
  return buf;
}

/// Segment numbers in `dir`, ascending.
std::vector<std::uint64_t> segments(const std::string& dir) {
  std::vector<std::uint64_t> out;
  std::error_code ec;
  for (auto& e : fs::directory_iterator(dir, ec)) {
    auto name = e.path().filename().string();
    if (name.size() != 16 || name.rfind("wal-", 0) != 0 || name.substr(12) != ".log")
      continue;
    try {
      out.push_back(std::stoull(name.substr(4, 8)));
    } catch (...) {
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

} // namespace

std::optional<error> write_file_atomic(const std::string& path, std::string_view bytes) {
  auto tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return io_error("cannot create", tmp);
  auto err = write_all(fd, bytes.data(), bytes.size(), tmp);
  if (!err && ::fsync(fd) != 0)
    err = io_error("cannot sync", tmp);
  ::close(fd);
  if (!err && std::rename(tmp.c_str(), path.c_str()) != 0)
    err = io_error("cannot rename onto", path);
  if (err) {
    ::unlink(tmp.c_str());
    return err;
  }
  fsync_dir(fs::path(path).parent_path().string());
  return std::nullopt;
}

result<std::string> read_file_bytes(const std::string& path, std::uint64_t limit) {
  return read_bounded_file(path, limit, "file");
}

// -- record_log ---------------------------------------------------------------------

result<std::unique_ptr<record_log>> record_log::open(const std::string& dir, bool sync_each) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    return error{errc::io, "cannot create log folder '" + dir + "': " + ec.message()};
  auto existing = segments(dir);
  std::unique_ptr<record_log> log(new record_log(dir, sync_each));
  if (auto err = log->open_segment(existing.empty() ? 1 : existing.back() + 1))
    return *err;
  return log;
}

record_log::~record_log() {
  if (fd_ >= 0)
    ::close(fd_);
}

std::optional<error> record_log::open_segment(std::uint64_t n) {
  auto path = dir_ + "/" + segment_name(n);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0)
    return io_error("cannot open log segment", path);
  if (fd_ >= 0)
    ::close(fd_);
  fd_ = fd;
  segment_ = n;
  records_ = 0;
  fsync_dir(dir_);
  return std::nullopt;
}

std::optional<error> record_log::append(std::initializer_list<std::string_view> parts) {
  return append(std::vector<std::string_view>(parts));
}

std::optional<error> record_log::append(const std::vector<std::string_view>& parts) {
  std::size_t size = 0;
  std::uint32_t crc = 0;
  for (auto& p : parts) {
    size += p.size();
    crc = crc32_update(crc, p.data(), p.size());
  }
  if (size > 0xffffffffu)
    return error{errc::too_large, "log record of " + std::to_string(size) + " bytes"};
  auto path = dir_ + "/" + segment_name(segment_);
  if (fd_ < 0)
    return error{errc::io, "write-ahead log '" + dir_ + "' has no open segment (a rotation failed)"};
  std::string head;
  put(head, record_magic);
  put(head, static_cast<std::uint32_t>(size));
  put(head, crc);
  // One writev of the whole record: O_APPEND puts it at the end; a crash can
  // at worst leave it torn, which read_log recognises.
  std::vector<iovec> iov;
  iov.push_back({head.data(), head.size()});
  for (auto& p : parts)
    if (!p.empty())
      iov.push_back({const_cast<char*>(p.data()), p.size()});
  std::size_t total = head.size() + size, done = 0;
  // A failed write (a full disk) must not leave half a record that later
  // records would follow: the segment is cut back to where it was, or, if
  // that fails too, closed (every later append fails: nothing unlogged is
  // acknowledged).
  auto start = ::lseek(fd_, 0, SEEK_END);
  auto fail = [&](const char* what) {
    auto err = io_error(what, path);
    if (start < 0 || ::ftruncate(fd_, start) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
    return err;
  };
  while (done < total) {
    auto w = ::writev(fd_, iov.data(), static_cast<int>(iov.size()));
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return fail("cannot write");
    }
    done += static_cast<std::size_t>(w);
    // A short write: drop what went out and go on with the rest.
    auto left = static_cast<std::size_t>(w);
    std::size_t i = 0;
    while (i < iov.size() && left >= iov[i].iov_len)
      left -= iov[i++].iov_len;
    iov.erase(iov.begin(), iov.begin() + static_cast<std::ptrdiff_t>(i));
    if (!iov.empty()) {
      iov[0].iov_base = static_cast<char*>(iov[0].iov_base) + left;
      iov[0].iov_len -= left;
    }
  }
  if (sync_each_ && ::fdatasync(fd_) != 0)
    return fail("cannot sync");
  ++records_;
  return std::nullopt;
}

result<std::uint64_t> record_log::rotate() {
  auto closed = segment_;
  // (No flush here: with sync_each every record already is on the disk;
  // without it the log promises to survive the process, not the machine.)
  auto err = fd_ < 0 ? std::optional<error>(error{errc::io, "write-ahead log '" + dir_
                                                              + "' has no open segment"})
                     : open_segment(segment_ + 1);
  if (err) { // no segment to append to: every append fails until one opens
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = -1;
    return *err;
  }
  return closed;
}

namespace {

/// The record at the start of `in`, if it is whole and its checksum holds.
std::optional<std::string_view> valid_record(std::string_view in) {
  std::uint32_t magic = 0, len = 0, crc = 0;
  if (!get(in, magic) || magic != record_magic || !get(in, len) || !get(in, crc)
      || in.size() < len || crc32(in.data(), len) != crc)
    return std::nullopt;
  return in.substr(0, len);
}

/// The offset in `in` (after its first byte) of the next valid record, or npos.
std::size_t next_valid_record(std::string_view in) {
  char m[4];
  std::memcpy(m, &record_magic, 4);
  std::string_view magic(m, 4);
  for (auto at = in.find(magic, 1); at != std::string_view::npos; at = in.find(magic, at + 1))
    if (valid_record(in.substr(at)))
      return at;
  return std::string_view::npos;
}

} // namespace

result<log_contents> read_log(const std::string& dir, std::uint64_t after, bool salvage) {
  log_contents out;
  auto segs = segments(dir);
  for (auto n : segs) {
    out.last_segment = n;
    if (n <= after)
      continue;
    auto path = dir + "/" + segment_name(n);
    auto bytes = read_bounded_file(path, limits::log_segment_bytes, "log segment");
    if (!bytes)
      return bytes.err();
    std::string_view in(bytes.value());
    std::size_t offset = 0;
    while (!in.empty()) {
      if (auto rec = valid_record(in)) {
        out.records.emplace_back(*rec);
        in.remove_prefix(record_header + rec->size());
        offset += record_header + rec->size();
        continue;
      }
      auto where = path + " at byte " + std::to_string(offset);
      // A torn tail: a crash mid-append; no valid record follows it. (The
      // writer cuts a failed append back, so only a crash leaves one.)
      auto next = next_valid_record(in);
      std::string_view at = in;
      std::uint32_t magic = 0, len = 0, crc = 0;
      bool whole = get(at, magic) && get(at, len) && get(at, crc) && at.size() >= len;
      if (next == std::string_view::npos) {
        if (!whole && (magic == record_magic || in.size() < 4)) {
          out.notes.push_back(where + ": torn record (" + std::to_string(in.size())
                              + " bytes) dropped; it was never acknowledged");
          break;
        }
      }
      // Anything else is damage to bytes that were written whole: they may
      // hold acknowledged updates.
      auto what = where + ": damaged record ("
                  + (magic != record_magic ? "bad magic; "
                     : !whole              ? "length past the end; "
                                           : "bad checksum; ")
                  + (next == std::string_view::npos
                       ? std::to_string(in.size()) + " bytes to the end of the segment"
                       : std::to_string(next) + " bytes before the next good record")
                  + ")";
      if (!salvage)
        return error{errc::malformed,
                     what + "; it may hold acknowledged updates. 'fedsp resume --salvage' "
                            "drops it and goes on"};
      out.notes.push_back(what + " dropped (--salvage)");
      ++out.damaged;
      if (next == std::string_view::npos)
        break;
      in.remove_prefix(next);
      offset += next;
    }
  }
  return out;
}

void drop_log_segments(const std::string& dir, std::uint64_t through) {
  for (auto n : segments(dir))
    if (n <= through) {
      std::error_code ec;
      fs::remove(dir + "/" + segment_name(n), ec);
    }
}

// -- checkpoints --------------------------------------------------------------------

std::string encode_checkpoint(const checkpoint_data& ck) {
  std::string out(checkpoint_magic, sizeof checkpoint_magic);
  auto state = ck.state.dump();
  put(out, static_cast<std::uint64_t>(state.size()));
  out += state;
  put(out, static_cast<std::uint32_t>(ck.prompts.size()));
  for (auto& [name, ps] : ck.prompts) {
    auto buf = encode(envelope{name, eval_request_msg{ps.version, ps, "checkpoint"}});
    put(out, static_cast<std::uint64_t>(buf.size_bytes()));
    buf.for_each_piece([&](const char* p, std::size_t n) { out.append(p, n); });
  }
  put(out, static_cast<std::uint32_t>(ck.blobs.size()));
  for (auto& [name, bytes] : ck.blobs) {
    put(out, static_cast<std::uint32_t>(name.size()));
    out += name;
    put(out, static_cast<std::uint64_t>(bytes.size()));
    out += bytes;
  }
  put(out, crc32(out.data(), out.size()));
  return out;
}

result<checkpoint_data> decode_checkpoint(std::string_view bytes, const std::string& where) {
  auto bad = [&](const std::string& what) {
    return error{errc::malformed, "checkpoint '" + where + "': " + what};
  };
  if (bytes.size() < sizeof checkpoint_magic + 4
      || std::memcmp(bytes.data(), checkpoint_magic, sizeof checkpoint_magic) != 0)
    return bad("not a fedsp checkpoint (wrong magic or empty)");
  std::uint32_t crc = 0;
  std::memcpy(&crc, bytes.data() + bytes.size() - 4, 4);
  if (crc32(bytes.data(), bytes.size() - 4) != crc)
    return bad("checksum mismatch (truncated or altered)");
  std::string_view in = bytes.substr(sizeof checkpoint_magic, bytes.size() - 4 - sizeof checkpoint_magic);
  checkpoint_data ck;
  std::uint64_t len = 0;
  if (!get(in, len) || in.size() < len)
    return bad("truncated state");
  auto state = json::parse(std::string(in.substr(0, len)));
  if (!state)
    return bad("state is not JSON: " + state.err().text);
  ck.state = std::move(state).value();
  in.remove_prefix(len);
  std::uint32_t n = 0;
  if (!get(in, n) || n > 1'000'000)
    return bad("truncated prompt table");
  for (std::uint32_t i = 0; i < n; ++i) {
    if (!get(in, len) || in.size() < len)
      return bad("truncated prompt set " + std::to_string(i));
    auto env = decode_bytes(in.data(), len);
    if (!env)
      return bad("prompt set " + std::to_string(i) + ": " + env.err().message());
    auto* req = std::get_if<eval_request_msg>(&env.value().body);
    if (req == nullptr)
      return bad("prompt set " + std::to_string(i) + " is not a prompt set");
    ck.prompts.emplace_back(env.value().sender, std::move(req->prompts));
    in.remove_prefix(len);
  }
  if (!get(in, n) || n > 1'000'000)
    return bad("truncated blob table");
  for (std::uint32_t i = 0; i < n; ++i) {
    std::uint32_t name_len = 0;
    if (!get(in, name_len) || in.size() < name_len)
      return bad("truncated blob " + std::to_string(i));
    std::string name(in.substr(0, name_len));
    in.remove_prefix(name_len);
    if (!get(in, len) || in.size() < len)
      return bad("truncated blob '" + name + "'");
    ck.blobs.emplace_back(std::move(name), std::string(in.substr(0, len)));
    in.remove_prefix(len);
  }
  if (!in.empty())
    return bad(std::to_string(in.size()) + " unexpected trailing bytes");
  return ck;
}

} // namespace fedsp
