// The join token at the transport, before CAF reads a byte (issue 15, D7;
// docs/network.md "Before the token").
//
// CAF's middleman sizes its receive buffer from the 32-byte BASP header a
// peer sends, before anything of fedsp sees the connection: one header
// declaring 2 GB made a server allocate 2 GB for anyone who could connect.
// The guard sits below CAF, in the process's socket calls (recv/send, and
// libssl's SSL_read/SSL_write, which actors/network.cpp already wraps):
//
// - a join node's first bytes on a connection to the server are a preamble,
//   "FEDSPJ01", a 16-bit big-endian length and the join token;
// - the server reads the preamble itself on every accepted connection
//   before CAF sees anything; a connection that does not open with one (a
//   wrong magic, a length of 0 or over 256) is shut down: until then a
//   peer can make the server hold 266 bytes;
// - after it, the server follows the BASP framing (32-byte header, payload)
//   and shuts down a connection whose header declares a payload over its
//   limit, before the header reaches CAF: max_frame_bytes with the right
//   token (compared in constant time), handshake_frame_bytes without. A
//   node with a wrong token thus still reaches the server's own check of
//   its hello, which refuses it by name ("wrong join token", exit 3 on the
//   node), but can never make it allocate more than a handshake.
//
// Nothing is guarded until arm_server or arm_client is called (fedsp serve
// and fedsp join do); other processes pay one atomic load per call.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <dlfcn.h>
#include <string>
#include <sys/types.h>

namespace fedsp::guard {

/// The largest BASP payload a peer may declare: a federation message's
/// limit (1 GiB, actors/wire.hpp) and room for CAF's framing of it.
inline constexpr std::uint64_t max_frame_bytes = (1ull << 30) + (1ull << 20);
/// The largest payload a connection without the right token may declare:
/// CAF's handshakes and a hello are far below it.
inline constexpr std::uint64_t handshake_frame_bytes = 64 * 1024;
/// The longest token a preamble may carry.
inline constexpr std::size_t max_token_bytes = 256;

/// This process serves: every accepted TCP connection must open with a
/// preamble carrying `token`.
void arm_server(const std::string& token);
/// This process joins the server on `port`: each TCP connection to that
/// port opens with a preamble carrying `token`.
void arm_client(std::uint16_t port, const std::string& token);

/// Connections the server refused, by reason: "preamble" and "frame" (shut
/// down), "token" (held to handshake size), for tests and logs.
std::uint64_t refused(const char* reason);
// -- for the interposed calls (actors/network.cpp, transport_guard.cpp) -----

using raw_read = ssize_t (*)(void* ctx, void* buf, std::size_t len);
using raw_write = ssize_t (*)(void* ctx, const void* buf, std::size_t len);
/// A read on `fd` (recv or SSL_read): the preamble and framing checks of an
/// accepted connection; otherwise `read` as it is. A refusal shuts the
/// socket down and returns 0 (end of stream).
ssize_t on_read(int fd, void* buf, std::size_t len, raw_read read, void* ctx);
/// A write on `fd` (send or SSL_write): the preamble first on a guarded
/// connection to the server. Returns what `write` returns for `buf` (or
/// its error while the preamble is not yet out).
ssize_t on_write(int fd, const void* buf, std::size_t len, raw_write write, void* ctx);
/// Whether any guarding is armed (fast path for the wrappers).
bool armed();

/// The next definition of `name` after the executable's (libc's or
/// libssl's own), for the wrappers that stand in for them; aborts, naming
/// it, if there is none.
template <class F>
F next_symbol(const char* name) {
  auto* f = dlsym(RTLD_NEXT, name);
  if (f == nullptr) {
    std::fprintf(stderr, "fedsp: cannot find the library's %s: %s\n", name, dlerror());
    std::abort();
  }
  return reinterpret_cast<F>(f);
}

} // namespace fedsp::guard
