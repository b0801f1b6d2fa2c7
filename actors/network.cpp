#include "actors/network.hpp"
#include "runtime/files.hpp"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <caf/openssl/all.hpp>
#include <dlfcn.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/stat.h>

#include "actors/client.hpp"
#include "actors/run_setup.hpp"
#include "actors/server.hpp"
#include "actors/transport_guard.hpp"
#include "actors/worker.hpp"
#include "runtime/call_syntax.hpp"
#include "models/device.hpp"

// CAF 0.17's OpenSSL session (libcaf_openssl) asks SSL_get_error why a
// call failed without first emptying the thread's OpenSSL error queue, and
// does not empty it after a connection fails. All TLS connections of a
// process are served by CAF's one I/O thread, so the error a dead peer
// leaves there (OpenSSL 3: "unexpected eof while reading") made the next
// harmless "try again later" on another connection read as a fatal error:
// killing one join process closed the server's connection to another one
// (docs/network.md). OpenSSL requires an empty queue before each I/O call;
// these wrappers, which the dynamic linker binds in place of libssl's for
// libcaf_openssl (a definition in the executable comes first), empty it
// and call libssl's own.
using fedsp::guard::next_symbol; // (actors/transport_guard.hpp)

extern "C" {
// (SSL_read and SSL_write also pass through the transport guard: the join
// token before CAF reads a byte; actors/transport_guard.hpp.)
int SSL_read(SSL* ssl, void* buf, int num) {
  static auto next = next_symbol<int (*)(SSL*, void*, int)>("SSL_read");
  ERR_clear_error();
  if (!fedsp::guard::armed() || num < 0)
    return next(ssl, buf, num);
  auto raw = [](void* s, void* b, std::size_t n) -> ssize_t {
    ERR_clear_error();
    return next(static_cast<SSL*>(s), b, static_cast<int>(n));
  };
  return static_cast<int>(
    fedsp::guard::on_read(SSL_get_fd(ssl), buf, static_cast<std::size_t>(num), raw, ssl));
}
int SSL_write(SSL* ssl, const void* buf, int num) {
  static auto next = next_symbol<int (*)(SSL*, const void*, int)>("SSL_write");
  ERR_clear_error();
  if (!fedsp::guard::armed() || num < 0)
    return next(ssl, buf, num);
  auto raw = [](void* s, const void* b, std::size_t n) -> ssize_t {
    ERR_clear_error();
    return next(static_cast<SSL*>(s), b, static_cast<int>(n));
  };
  return static_cast<int>(
    fedsp::guard::on_write(SSL_get_fd(ssl), buf, static_cast<std::size_t>(num), raw, ssl));
}
int SSL_accept(SSL* ssl) {
  static auto next = next_symbol<int (*)(SSL*)>("SSL_accept");
  ERR_clear_error();
  return next(ssl);
}
int SSL_connect(SSL* ssl) {
  static auto next = next_symbol<int (*)(SSL*)>("SSL_connect");
  ERR_clear_error();
  return next(ssl);
}
}

namespace fedsp {

namespace fs = std::filesystem;

result<std::pair<std::string, std::uint16_t>> parse_endpoint(const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0)
    return error{errc::bad_argument, "'" + text + "' is not HOST:PORT"};
  auto port_text = text.substr(colon + 1);
  double port = 0;
  if (!parse_number(port_text, port) || port < 1 || port > 65535
      || port != static_cast<std::uint16_t>(port))
    return error{errc::bad_argument, "'" + port_text + "' in '" + text
                                       + "' is not a port (1-65535)"};
  return std::make_pair(text.substr(0, colon), static_cast<std::uint16_t>(port));
}

std::optional<error> configure_network(caf::actor_system_config& cfg, const network_options& net) {
  cfg.load<caf::io::middleman>();
  if (net.insecure)
    return std::nullopt;
  for (auto* f : {"ca.pem", "node.pem", "node.key"})
    if (!fs::is_regular_file(fs::path(net.certs_dir) / f))
      return error{errc::io, "no " + (fs::path(net.certs_dir) / f).string()
                               + " (make them with 'fedsp certs --out " + net.certs_dir
                               + "', or run with --insecure for plain text)"};
  cfg.load<caf::openssl::manager>();
  cfg.openssl_certificate = (fs::path(net.certs_dir) / "node.pem").string();
  cfg.openssl_key = (fs::path(net.certs_dir) / "node.key").string();
  cfg.openssl_cafile = (fs::path(net.certs_dir) / "ca.pem").string();
  return std::nullopt;
}

result<std::string> read_token(const std::string& path) {
  auto text = read_bounded_file(path, limits::token_bytes, "join token file");
  if (!text)
    return error{errc::io, text.err().text + " ('fedsp certs --out DIR' writes DIR/token)"};
  std::string line = text.value().substr(0, text.value().find('\n'));
  line = trim(line);
  if (line.empty())
    return error{errc::bad_argument, "the join token file '" + path + "' is empty"};
  return line;
}

namespace {

/// Runs an openssl command quietly; an error names it.
std::optional<error> openssl(const std::string& cmd) {
  if (std::system((cmd + " >/dev/null 2>&1").c_str()) != 0)
    return error{errc::io, "failed: " + cmd + " (is the openssl command installed?)"};
  return std::nullopt;
}

std::string quoted(const fs::path& p) { return "'" + p.string() + "'"; }

/// A key pair for `name` (the certificate's CN), signed by the CA in `ca`,
/// written to out/node.pem and out/node.key.
std::optional<error> make_node_pair(const fs::path& ca, const fs::path& out,
                                    const std::string& name) {
  if (auto err = openssl("openssl req -newkey rsa:2048 -nodes -keyout " + quoted(out / "node.key")
                         + " -out " + quoted(out / "node.csr") + " -subj /CN=" + name))
    return err;
  auto err = openssl("openssl x509 -req -in " + quoted(out / "node.csr") + " -CA "
                     + quoted(ca / "ca.pem") + " -CAkey " + quoted(ca / "ca.key")
                     + " -CAcreateserial -out " + quoted(out / "node.pem") + " -days 365");
  std::error_code ec;
  fs::remove(out / "node.csr", ec);
  ::chmod((out / "node.key").c_str(), 0600);
  return err;
}

bool is_node_name(const std::string& n) {
  return !n.empty() && n.size() <= 64 && n[0] != '.' && n[0] != '-'
         && n.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
              == std::string::npos;
}

} // namespace

result<dev_certs> make_dev_certs(const std::string& dir, const std::vector<std::string>& nodes) {
  std::set<std::string> seen;
  for (auto& n : nodes) {
    if (!is_node_name(n))
      return error{errc::bad_argument, "'" + n + "' is not a node name (letters, digits, '.', "
                                         "'_' and '-', at most 64, not starting with '.' or '-')"};
    if (!seen.insert(n).second)
      return error{errc::bad_argument, "node '" + n + "' is named twice"};
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    return error{errc::io, "cannot create '" + dir + "': " + ec.message()};
  fs::path d(dir);
  dev_certs made;
  // The CA and the token: made once, then kept, so that nodes can be added
  // later without handing every machine new files.
  made.ca_reused = fs::is_regular_file(d / "ca.pem") && fs::is_regular_file(d / "ca.key")
                   && fs::is_regular_file(d / "token");
  if (!made.ca_reused) {
    if (auto err = openssl("openssl req -x509 -newkey rsa:2048 -nodes -keyout "
                           + quoted(d / "ca.key") + " -out " + quoted(d / "ca.pem")
                           + " -days 365 -subj /CN=fedsp-dev-ca"))
      return *err;
    // The join token: 32 random bytes, in hex.
    std::ifstream rnd("/dev/urandom", std::ios::binary);
    unsigned char bytes[32];
    if (!rnd.read(reinterpret_cast<char*>(bytes), sizeof bytes))
      return error{errc::io, "cannot read /dev/urandom"};
    std::string token;
    for (auto b : bytes) {
      static const char* hex = "0123456789abcdef";
      token += hex[b >> 4];
      token += hex[b & 15];
    }
    std::ofstream(d / "token") << token << "\n";
    for (auto* secret : {"ca.key", "token"})
      ::chmod((d / secret).c_str(), 0600);
  }
  // The shared node pair (every node of a small development federation may
  // use it; each side checks the other's against the CA).
  if (!fs::is_regular_file(d / "node.pem") || !fs::is_regular_file(d / "node.key"))
    if (auto err = make_node_pair(d, d, "fedsp-node"))
      return *err;
  // One folder per named node: its own pair, the CA's certificate and the
  // token; not the CA's key. A machine gets only its folder.
  for (auto& n : nodes) {
    auto nd = d / n;
    fs::create_directories(nd, ec);
    if (ec)
      return error{errc::io, "cannot create '" + nd.string() + "': " + ec.message()};
    if (auto err = make_node_pair(d, nd, n))
      return *err;
    for (auto* f : {"ca.pem", "token"}) {
      fs::copy_file(d / f, nd / f, fs::copy_options::overwrite_existing, ec);
      if (ec)
        return error{errc::io, "cannot copy " + (d / f).string() + ": " + ec.message()};
    }
    ::chmod((nd / "token").c_str(), 0600);
    made.node_dirs.push_back(nd.string());
  }
  return made;
}

namespace {

class join_config : public caf::actor_system_config {
public:
  join_config() { add_message_type<wire_buffer>("fedsp::wire_buffer"); }
};

} // namespace

int join_federation(const join_options& opts) {
  std::error_code ec;
  fs::create_directories(opts.out_dir, ec);
  if (ec) {
    std::fprintf(stderr, "fedsp join: cannot create '%s': %s\n", opts.out_dir.c_str(),
                 ec.message().c_str());
    return 1;
  }
  auto log = make_run_logger("join", opts.out_dir, opts.console);
  join_config cfg;
  if (auto err = configure_network(cfg, opts.net)) {
    log->error("{}", err->text);
    return 1;
  }
  caf::actor_system sys{cfg};
  real_clock clock;
  event_log events(opts.out_dir + "/events.jsonl");
  traffic_meter traffic;
  auto ctx = std::make_shared<run_context>();
  ctx->events = &events;
  ctx->clock = &clock;
  ctx->log = log;
  ctx->traffic = &traffic;
  auto where = opts.net.host + ":" + std::to_string(opts.net.port);
  // Every connection to the server opens with the join token, before CAF's
  // handshake (actors/transport_guard.hpp).
  guard::arm_client(opts.net.port, opts.net.token);
  // Sessions: connect (with backoff), hello, host the clients until they
  // end; if the server goes away before it ended the run, again.
  int held_retries = 0;
  double held_wait = 0.5;
  for (int session = 0;; ++session) {
    server_actor server; // typed: connecting checks the peer's interface
    double backoff = 0.25;
    std::string last_error;
    // The first connection gets `attempts` tries; a reconnection after the
    // server went away gets `reconnect_s` seconds (the server may be
    // restarting, or its machine rebooting).
    auto since = std::chrono::steady_clock::now();
    auto elapsed = [&] {
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
    };
    for (int attempt = 1; !server; ++attempt) {
      auto r = opts.net.insecure
                 ? sys.middleman().remote_actor<server_actor>(opts.net.host, opts.net.port)
                 : caf::openssl::remote_actor<server_actor>(sys, opts.net.host, opts.net.port);
      if (r) {
        server = *r;
        break;
      }
      last_error = r.error() == caf::sec::unexpected_actor_messaging_interface
                     ? "the actor published there is not a fedsp server of this version "
                       "(its messages differ)"
                     : sys.render(r.error());
      bool more = session == 0 ? attempt < opts.attempts : elapsed() + backoff <= opts.reconnect_s;
      if (!more)
        break;
      if (session == 0)
        log->warn("cannot reach the server at {} ({}); attempt {} of {}, next in {:.2f} s", where,
                  last_error, attempt, opts.attempts, backoff);
      else
        log->warn("cannot reach the server at {} ({}); trying again in {:.2f} s ({:.0f} of {:.0f} "
                  "s spent)", where, last_error, backoff, elapsed(), opts.reconnect_s);
      std::this_thread::sleep_for(std::chrono::duration<double>(backoff));
      backoff = std::min(backoff * 2, 8.0);
    }
    if (!server) {
      log->error("giving up on the server at {}: {}{}", where, last_error,
                 last_error.find("handshake") != std::string::npos
                   ? " (a TLS handshake failed: the other side uses plain text, or "
                     "certificates of another CA)"
                   : "");
      return 1;
    }
    caf::scoped_actor self{sys};
    std::string text, path;
    std::uint64_t seed = 0;
    std::string refused;
    self->request(server, caf::infinite, hello_atom::value, opts.net.token, opts.first, opts.last)
      .receive(
        [&](std::string& t, std::string& p, std::uint64_t s) {
          text = std::move(t);
          path = std::move(p);
          seed = s;
        },
        [&](caf::error& err) { refused = sys.render(err); });
    if (!refused.empty()) {
      // Its ids still held by a node the server has not yet seen go (this
      // node's own earlier self, say): wait and ask again.
      if (refused.find("held by another node") != std::string::npos
          && ++held_retries < opts.attempts) {
        log->warn("the server says: {}; asking again in {:.2f} s", refused, held_wait);
        std::this_thread::sleep_for(std::chrono::duration<double>(held_wait));
        held_wait = std::min(held_wait * 2, 8.0);
        continue;
      }
      log->error("the server at {} refused this node: {}", where, refused);
      return 3;
    }
    auto sc = parse_scenario(text, path);
    if (!sc) {
      log->error("the server's scenario does not read here: {}", sc.err().text);
      return 1;
    }
    sc.value().seed = seed;
    auto shards = client_shards(sc.value());
    if (!shards) {
      log->error("{}", shards.err().message());
      return 1;
    }
    if (opts.last >= shards.value().size()) {
      log->error("the run has {} clients; this node was to host {}-{}", shards.value().size(),
                 opts.first, opts.last);
      return 3;
    }
    auto shared_sc = std::make_shared<const scenario>(sc.value());
    auto workers_n = std::max<std::uint32_t>(1, sc.value().compute.workers);
    set_compute_threads(static_cast<int>(
      sc.value().compute.threads
        ? sc.value().compute.threads
        : std::max(1u, std::max(1u, std::thread::hardware_concurrency()) / workers_n)));
    // compute.device is resolved against this machine: a join node with a
    // GPU uses it under `auto`; one without refuses `cuda` as a run would.
    auto devices = resolve_devices(sc.value().compute.device);
    if (!devices) {
      log->error("{}", devices.err().text);
      return 2;
    }
    if (!devices.value().note.empty())
      log->info("{}", devices.value().note);
    auto workers = spawn_workers(sys, devices.value(), workers_n, sc.value().model.kind == "gpt");
    std::vector<client_actor> clients;
    auto board = std::make_shared<pulse_board>(opts.last - opts.first + 1);
    for (auto c = opts.first; c <= opts.last; ++c) {
      client_config ccfg{c, shards.value()[c], shared_sc, caf::actor_cast<caf::actor>(server),
                         workers[c % workers_n], {}, board, c - opts.first,
                         nullptr}; // no paging on join nodes (docs/architecture.md)
      for (std::uint32_t k = 1; k < workers_n; ++k)
        ccfg.spares.push_back(workers[(c + k) % workers_n]);
      clients.push_back(sys.spawn(client, ctx, std::move(ccfg)));
      self->monitor(clients.back());
    }
    std::vector<caf::actor> handles;
    for (auto& c : clients)
      handles.push_back(caf::actor_cast<caf::actor>(c));
    auto pulse = spawn_pulse(sys, client_beat(sc.value()), board, std::move(handles));
    self->monitor(server);
    log->info("hosting clients {}-{} of '{}' for the server at {}", opts.first, opts.last,
              sc.value().name, where);
    // Until every client has ended (the server's Shutdown) or the server is gone.
    std::size_t alive = clients.size();
    bool server_gone = false;
    std::string why;
    auto on_down = [&](caf::down_msg& dm) {
      if (dm.source == server.address()) {
        server_gone = true;
        why = sys.render(dm.reason);
      } else {
        --alive;
      }
    };
    while (alive > 0 && !server_gone)
      self->receive(on_down);
    // A server that ended the run closes its side right after the Shutdown:
    // the clients' ends may come just after its own.
    bool waiting = true;
    while (alive > 0 && waiting)
      self->receive(on_down, caf::after(std::chrono::seconds(2)) >> [&] { waiting = false; });
    if (alive == 0)
      server_gone = false;
    for (auto& c : clients)
      self->send_exit(c, caf::exit_reason::user_shutdown);
    for (auto& w : workers)
      self->send_exit(w, caf::exit_reason::user_shutdown);
    self->send_exit(pulse, caf::exit_reason::user_shutdown);
    if (!server_gone) {
      log->info("the server ended the run");
      return 0;
    }
    log->warn("the server at {} went away ({}); reconnecting", where, why);
  }
}

} // namespace fedsp
