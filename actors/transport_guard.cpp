#include "actors/transport_guard.hpp"

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <dlfcn.h>
#include <map>
#include <mutex>
#include <netinet/in.h>
#include <string>
#include <sys/socket.h>
#include <unordered_map>

namespace fedsp::guard {

namespace {

constexpr char magic[8] = {'F', 'E', 'D', 'S', 'P', 'J', '0', '1'};
constexpr std::size_t basp_header = 32; // CAF 0.17: caf::io::basp::header_size
constexpr std::size_t shown_refusals = 10;

struct conn {
  bool server = false;
  // server: the preamble read so far; done once it is whole. The frames a
  // connection may declare: max_frame_bytes with the right token, a
  // handshake's size without (its hello is then refused by the server).
  std::string pre;
  bool preamble_done = false;
  std::uint64_t frame_limit = 0;
  unsigned char hdr[basp_header] = {};
  std::size_t hdr_got = 0;
  std::uint64_t payload_left = 0;
  // client: how much of the preamble went out
  std::size_t pre_sent = 0;
};

struct guard_state {
  std::mutex mtx;
  std::unordered_map<int, conn> conns;
  std::string token;
  std::string preamble; // the client's
  std::uint16_t port = 0;
  bool server = false;
  std::map<std::string, std::uint64_t> refused;
};

std::atomic<bool> is_armed{false};

guard_state& state() {
  static guard_state s;
  return s;
}

/// Shuts the connection down (CAF then sees its end) and counts why.
ssize_t refuse(int fd, const char* reason, const std::string& what) {
  std::uint64_t n = 0;
  {
    std::lock_guard<std::mutex> g(state().mtx);
    n = ++state().refused[reason];
    state().conns.erase(fd);
  }
  ::shutdown(fd, SHUT_RDWR);
  if (n <= shown_refusals)
    std::fprintf(stderr, "fedsp: refused a connection before it reached the federation: %s%s\n",
                 what.c_str(), n == shown_refusals ? " (further refusals of this kind not shown)" : "");
  return 0;
}

bool same_secret(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i)
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0 && !a.empty();
}

/// Follows BASP framing over `n` bytes read; false when a header declares
/// a payload over the connection's limit (`payload_len`: bytes 4-7,
/// big-endian).
bool frames_ok(conn& c, const unsigned char* p, std::size_t n, std::uint64_t& declared) {
  while (n > 0) {
    if (c.payload_left > 0) {
      auto take = std::min<std::uint64_t>(c.payload_left, n);
      c.payload_left -= take;
      p += take;
      n -= take;
      continue;
    }
    auto take = std::min(basp_header - c.hdr_got, n);
    std::memcpy(c.hdr + c.hdr_got, p, take);
    c.hdr_got += take;
    p += take;
    n -= take;
    if (c.hdr_got == basp_header) {
      declared = (std::uint64_t{c.hdr[4]} << 24) | (std::uint64_t{c.hdr[5]} << 16)
                 | (std::uint64_t{c.hdr[6]} << 8) | std::uint64_t{c.hdr[7]};
      if (declared > c.frame_limit)
        return false;
      c.payload_left = declared;
      c.hdr_got = 0;
    }
  }
  return true;
}

} // namespace

void arm_server(const std::string& token) {
  std::lock_guard<std::mutex> g(state().mtx);
  state().server = true;
  state().token = token;
  is_armed = true;
}

void arm_client(std::uint16_t port, const std::string& token) {
  std::lock_guard<std::mutex> g(state().mtx);
  state().server = false;
  state().port = port;
  state().token = token;
  auto& p = state().preamble;
  p.assign(magic, sizeof magic);
  p += static_cast<char>((token.size() >> 8) & 0xff);
  p += static_cast<char>(token.size() & 0xff);
  p += token;
  is_armed = true;
}

std::uint64_t refused(const char* reason) {
  std::lock_guard<std::mutex> g(state().mtx);
  auto it = state().refused.find(reason);
  return it == state().refused.end() ? 0 : it->second;
}

bool armed() { return is_armed.load(std::memory_order_relaxed); }

ssize_t on_read(int fd, void* buf, std::size_t len, raw_read read, void* ctx) {
  if (!armed())
    return read(ctx, buf, len);
  conn* c = nullptr;
  {
    std::lock_guard<std::mutex> g(state().mtx);
    auto it = state().conns.find(fd);
    if (it != state().conns.end() && it->second.server)
      c = &it->second; // (only this connection's I/O thread touches it)
  }
  if (c == nullptr)
    return read(ctx, buf, len);
  while (!c->preamble_done) {
    // magic and length first, then exactly the token: nothing of CAF's is
    // read here.
    std::size_t want = sizeof magic + 2;
    if (c->pre.size() >= want)
      want += (static_cast<unsigned char>(c->pre[8]) << 8) | static_cast<unsigned char>(c->pre[9]);
    char tmp[sizeof magic + 2 + max_token_bytes];
    auto got = read(ctx, tmp, want - c->pre.size());
    if (got <= 0)
      return got; // not there yet (EAGAIN / want-read), or the peer left
    c->pre.append(tmp, static_cast<std::size_t>(got));
    if (std::memcmp(c->pre.data(), magic, std::min(c->pre.size(), sizeof magic)) != 0)
      return refuse(fd, "preamble", "it did not open with a fedsp join preamble (not a fedsp "
                                    "node, or one of another version)");
    if (c->pre.size() < sizeof magic + 2)
      continue;
    auto n = (static_cast<unsigned char>(c->pre[8]) << 8) | static_cast<unsigned char>(c->pre[9]);
    if (n == 0 || n > static_cast<int>(max_token_bytes))
      return refuse(fd, "preamble", "its preamble declared a token of " + std::to_string(n)
                                      + " bytes");
    if (c->pre.size() == sizeof magic + 2 + static_cast<std::size_t>(n)) {
      std::string token;
      {
        std::lock_guard<std::mutex> g(state().mtx);
        token = state().token;
      }
      bool ok = same_secret(c->pre.substr(sizeof magic + 2), token);
      if (!ok) {
        std::lock_guard<std::mutex> g(state().mtx);
        ++state().refused["token"]; // (its hello is refused by the server, by name)
      }
      c->frame_limit = ok ? max_frame_bytes : handshake_frame_bytes;
      c->preamble_done = true;
      c->pre.clear();
      c->pre.shrink_to_fit();
    }
  }
  auto got = read(ctx, buf, len);
  if (got <= 0)
    return got;
  std::uint64_t declared = 0;
  if (!frames_ok(*c, static_cast<const unsigned char*>(buf), static_cast<std::size_t>(got),
                 declared))
    return refuse(fd, "frame", "a message header declared " + std::to_string(declared)
                                 + " bytes; at most " + std::to_string(c->frame_limit) + " are taken"
                                 + (c->frame_limit < max_frame_bytes ? " before the join token" : ""));
  return got;
}

ssize_t on_write(int fd, const void* buf, std::size_t len, raw_write write, void* ctx) {
  if (!armed())
    return write(ctx, buf, len);
  conn* c = nullptr;
  std::string preamble;
  {
    std::lock_guard<std::mutex> g(state().mtx);
    auto it = state().conns.find(fd);
    if (it != state().conns.end() && !it->second.server
        && it->second.pre_sent < state().preamble.size()) {
      c = &it->second;
      preamble = state().preamble;
    }
  }
  while (c != nullptr && c->pre_sent < preamble.size()) {
    auto w = write(ctx, preamble.data() + c->pre_sent, preamble.size() - c->pre_sent);
    if (w <= 0)
      return w; // the caller tries again later; the preamble goes first
    c->pre_sent += static_cast<std::size_t>(w);
  }
  return write(ctx, buf, len);
}

} // namespace fedsp::guard

// -- the interposed socket calls (the executable's definitions come first) ----

using namespace fedsp::guard;

namespace {

void track_accepted(int fd) {
  if (fd < 0 || !armed())
    return;
  std::lock_guard<std::mutex> g(state().mtx);
  if (!state().server)
    return;
  state().conns[fd] = conn{}; // a new connection: nothing carried over from the fd's past
  state().conns[fd].server = true;
}

ssize_t plain_read(void* ctx, void* buf, std::size_t len) {
  static auto next = next_symbol<ssize_t (*)(int, void*, std::size_t, int)>("recv");
  auto* a = static_cast<std::pair<int, int>*>(ctx);
  return next(a->first, buf, len, a->second);
}

ssize_t plain_write(void* ctx, const void* buf, std::size_t len) {
  static auto next = next_symbol<ssize_t (*)(int, const void*, std::size_t, int)>("send");
  auto* a = static_cast<std::pair<int, int>*>(ctx);
  return next(a->first, buf, len, a->second);
}

} // namespace

extern "C" {

int accept(int fd, struct sockaddr* addr, socklen_t* len) {
  static auto next = next_symbol<int (*)(int, struct sockaddr*, socklen_t*)>("accept");
  auto r = next(fd, addr, len);
  track_accepted(r);
  return r;
}

int accept4(int fd, struct sockaddr* addr, socklen_t* len, int flags) {
  static auto next = next_symbol<int (*)(int, struct sockaddr*, socklen_t*, int)>("accept4");
  auto r = next(fd, addr, len, flags);
  track_accepted(r);
  return r;
}

int connect(int fd, const struct sockaddr* addr, socklen_t len) {
  static auto next = next_symbol<int (*)(int, const struct sockaddr*, socklen_t)>("connect");
  if (armed() && addr != nullptr) {
    std::uint16_t port = 0;
    if (addr->sa_family == AF_INET && len >= sizeof(sockaddr_in))
      port = ntohs(reinterpret_cast<const sockaddr_in*>(addr)->sin_port);
    else if (addr->sa_family == AF_INET6 && len >= sizeof(sockaddr_in6))
      port = ntohs(reinterpret_cast<const sockaddr_in6*>(addr)->sin6_port);
    int type = 0;
    socklen_t tl = sizeof type;
    std::lock_guard<std::mutex> g(state().mtx);
    if (!state().server && port == state().port && port != 0
        && ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 && type == SOCK_STREAM)
      state().conns[fd] = conn{}; // a client connection to the server: preamble first
  }
  return next(fd, addr, len);
}

ssize_t recv(int fd, void* buf, std::size_t len, int flags) {
  std::pair<int, int> a{fd, flags};
  return on_read(fd, buf, len, plain_read, &a);
}

ssize_t send(int fd, const void* buf, std::size_t len, int flags) {
  std::pair<int, int> a{fd, flags};
  return on_write(fd, buf, len, plain_write, &a);
}

} // extern "C"
