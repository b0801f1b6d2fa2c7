// Across machines (docs/network.md): the server side of a run listens on a
// TCP port through CAF's middleman, and join processes host client actors
// that talk to it as they would in one process. TLS (CAF's OpenSSL module)
// with a development CA made by `fedsp certs`, mutual: each side presents a
// certificate the other's CA signed; plain text only with --insecure on both
// sides. A node introduces itself with the run's join token before any of
// its clients joins; the server binds those client ids to that node.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <caf/actor_system_config.hpp>

#include "runtime/error.hpp"

namespace fedsp {

struct network_options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  std::string certs_dir;   // ca.pem, node.pem, node.key (fedsp certs)
  bool insecure = false;   // plain text: no TLS at all
  std::string token;       // the join token
};

/// "HOST:PORT" (PORT 1-65535). Errors name what is wrong.
result<std::pair<std::string, std::uint16_t>> parse_endpoint(const std::string& text);

/// Loads CAF's middleman and, unless insecure, its OpenSSL module with the
/// certificates of `net.certs_dir`. Errors: a missing certificate file.
std::optional<error> configure_network(caf::actor_system_config& cfg, const network_options& net);

/// Reads a join token file (its first line, trimmed). Errors: unreadable or
/// empty.
result<std::string> read_token(const std::string& path);

struct dev_certs {
  bool ca_reused = false;             // DIR already had a CA and a token
  std::vector<std::string> node_dirs; // DIR/NAME per named node
};

/// `fedsp certs`: in DIR a development CA (ca.pem, ca.key), a join token
/// (token) and a node key pair it signed that every node may share
/// (node.pem, node.key): made if missing, kept if there (nodes can be added
/// later). For each of `nodes`, DIR/NAME with that node's own pair (CN =
/// NAME), ca.pem and the token, without the CA's key: what that machine
/// needs. Uses the openssl command. Errors: a bad or repeated node name, an
/// openssl failure, an unwritable DIR.
result<dev_certs> make_dev_certs(const std::string& dir,
                                 const std::vector<std::string>& nodes = {});

struct join_options {
  network_options net;
  std::uint32_t first = 0, last = 0; // the client ids this node hosts
  std::string out_dir;               // the node's log and events
  int attempts = 8;                  // first connection: attempts (exponential backoff)
  double reconnect_s = 300;          // after the server went away mid-run: how
                                     // long to keep trying (a restart, a reboot)
  bool console = true;
};

/// `fedsp join`: connects (retrying with backoff), presents the token,
/// receives the scenario, hosts the clients until the server ends the run;
/// reconnects and rejoins its clients if the server goes away mid-run.
/// Returns the process exit status: 0 when the server ended the run, 1 when
/// it could not be reached, 3 when it refused this node.
int join_federation(const join_options& opts);

} // namespace fedsp
