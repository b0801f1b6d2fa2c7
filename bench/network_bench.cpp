// Update throughput and latency between two processes over CAF's middleman
// (bench/network.sh runs it; docs/network.md). One process publishes a sink
// that decodes each Update as the aggregator does (routing head, then the
// full validating decode) and answers with an encoded Ack; the other sends
// updates of a given size:
//   latency      one at a time: the round trip of each (median, p90, p99)
//   throughput   `window` requests in flight: updates and MB per second
//
//   fedsp_netbench serve PORT (--certs DIR | --insecure)
//   fedsp_netbench send HOST PORT FLOATS COUNT WINDOW (--certs DIR | --insecure)
//   fedsp_netbench probe HOST PORT TOKEN FIRST LAST CLIENT (--certs DIR | --insecure)
//     (a node that claims FIRST-LAST, then sends an Update as CLIENT: the
//     network test's impersonation check)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <caf/openssl/all.hpp>

#include "actors/network.hpp"
#include "actors/server.hpp"
#include "actors/transport_guard.hpp"
#include "actors/wire.hpp"

using namespace fedsp;

namespace {

class bench_config : public caf::actor_system_config {
public:
  bench_config() { add_message_type<wire_buffer>("fedsp::wire_buffer"); }
};

caf::behavior sink(caf::event_based_actor*) {
  return {
    [](const wire_buffer& buf) -> wire_buffer {
      auto head = peek(buf);
      auto env = decode(buf);
      if (!head || !env)
        return encode(envelope{"sink", reject_msg{errc::malformed, "bad", 0}});
      return encode(envelope{"sink", ack_msg{head.value().task_id}});
    },
  };
}

wire_buffer update_of(std::size_t floats, std::uint64_t task) {
  tensor_buffer t{"prefix", {static_cast<std::uint32_t>(floats)}, {}};
  t.data.resize(floats);
  for (std::size_t i = 0; i < floats; ++i)
    t.data[i] = static_cast<float>(i % 97) * 0.01f;
  update_msg up{task, 1, 0, prompt_set{0, {std::move(t)}}, 10, {{"loss_before", 1.0}}};
  return encode(envelope{"client-1", std::move(up)});
}

int usage() {
  std::fprintf(stderr, "usage: fedsp_netbench serve PORT (--certs DIR | --insecure)\n"
                       "       fedsp_netbench send HOST PORT FLOATS COUNT WINDOW "
                       "(--certs DIR | --insecure)\n");
  return 2;
}

} // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() < 3)
    return usage();
  network_options net;
  if (args[args.size() - 1] == "--insecure") {
    net.insecure = true;
    args.pop_back();
  } else if (args.size() >= 2 && args[args.size() - 2] == "--certs") {
    net.certs_dir = args.back();
    args.resize(args.size() - 2);
  } else {
    return usage();
  }
  bench_config cfg;
  if (auto err = configure_network(cfg, net)) {
    std::fprintf(stderr, "%s\n", err->text.c_str());
    return 1;
  }
  caf::actor_system sys{cfg};
  if (args[0] == "serve" && args.size() == 2) {
    auto port = static_cast<std::uint16_t>(std::stoi(args[1]));
    auto s = sys.spawn(sink);
    auto bound = net.insecure ? sys.middleman().publish(s, port, "127.0.0.1", true)
                              : caf::openssl::publish(s, port, "127.0.0.1", true);
    if (!bound) {
      std::fprintf(stderr, "cannot publish: %s\n", sys.render(bound.error()).c_str());
      return 1;
    }
    std::printf("serving on %u\n", static_cast<unsigned>(*bound));
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::hours(1)); // killed by the script
    return 0;
  }
  if (args[0] == "probe" && args.size() == 7) {
    // A node that says hello for FIRST-LAST (TOKEN "-": no hello) and then
    // sends an Update claiming client CLIENT; prints the server's answer.
    // Its connection opens with the join preamble as a node's does (TOKEN
    // "-": a wrong one, so it reaches the server held to handshake size).
    guard::arm_client(static_cast<std::uint16_t>(std::stoi(args[2])),
                      args[3] == "-" ? std::string("no-token") : args[3]);
    auto port = std::stoi(args[2]);
    auto r = net.insecure ? sys.middleman().remote_actor<server_actor>(args[1], port)
                          : caf::openssl::remote_actor<server_actor>(sys, args[1], port);
    if (!r) {
      std::fprintf(stderr, "cannot connect: %s\n", sys.render(r.error()).c_str());
      return 1;
    }
    caf::scoped_actor self{sys};
    if (args[3] != "-")
      self->request(*r, std::chrono::seconds(30), hello_atom::value, args[3],
                    static_cast<std::uint32_t>(std::stoul(args[4])),
                    static_cast<std::uint32_t>(std::stoul(args[5])))
        .receive([](std::string&, std::string&, std::uint64_t) { std::printf("hello accepted\n"); },
                 [&](caf::error& e) { std::printf("hello refused: %s\n", sys.render(e).c_str()); });
    auto client = static_cast<std::uint32_t>(std::stoul(args[6]));
    tensor_buffer t{"prefix", {4}, {0.f, 1.f, 2.f, 3.f}};
    update_msg up{1, client, 0, prompt_set{0, {t}}, 10, {}};
    self->request(*r, std::chrono::seconds(30), encode(envelope{"client-" + args[6], up}))
      .receive(
        [](const wire_buffer& reply) {
          auto env = decode(reply);
          std::printf("%s", env ? describe(env.value()).c_str() : env.err().message().c_str());
        },
        [&](caf::error& e) { std::printf("error: %s\n", sys.render(e).c_str()); });
    return 0;
  }
  if (args[0] != "send" || args.size() != 6)
    return usage();
  auto host = args[1];
  auto port = static_cast<std::uint16_t>(std::stoi(args[2]));
  auto floats = std::stoul(args[3]);
  auto count = std::stoul(args[4]);
  auto window = std::max<std::size_t>(1, std::stoul(args[5]));
  caf::expected<caf::actor> server = caf::sec::none;
  for (int attempt = 0; attempt < 40; ++attempt) {
    server = net.insecure ? sys.middleman().remote_actor(host, port)
                          : caf::openssl::remote_actor(sys, host, port);
    if (server)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (!server) {
    std::fprintf(stderr, "cannot connect: %s\n", sys.render(server.error()).c_str());
    return 1;
  }
  auto msg = update_of(floats, 7);
  caf::scoped_actor self{sys};
  using clock = std::chrono::steady_clock;
  // Warm-up, then the measured requests.
  for (int i = 0; i < 20; ++i)
    self->request(*server, caf::infinite, msg).receive([](const wire_buffer&) {},
                                                      [](caf::error&) {});
  std::vector<double> rtt;
  auto start = clock::now();
  if (window == 1) {
    for (std::size_t i = 0; i < count; ++i) {
      auto t0 = clock::now();
      self->request(*server, caf::infinite, msg).receive([](const wire_buffer&) {},
                                                        [](caf::error&) {});
      rtt.push_back(std::chrono::duration<double, std::micro>(clock::now() - t0).count());
    }
  } else {
    std::size_t sent = 0, done = 0;
    auto send_one = [&] {
      self->send(*server, msg);
      ++sent;
    };
    while (sent < std::min(window, count))
      send_one();
    while (done < count) {
      self->receive([&](const wire_buffer&) {
        ++done;
        if (sent < count)
          send_one();
      });
    }
  }
  double seconds = std::chrono::duration<double>(clock::now() - start).count();
  double mb = static_cast<double>(msg.size_bytes()) * count / 1e6;
  if (window == 1) {
    std::sort(rtt.begin(), rtt.end());
    auto q = [&](double p) { return rtt[static_cast<std::size_t>(p * (rtt.size() - 1))]; };
    std::printf("%s floats=%zu bytes=%zu window=1 count=%zu median_us=%.1f p90_us=%.1f "
                "p99_us=%.1f\n",
                net.insecure ? "plain" : "tls", floats, msg.size_bytes(), count, q(0.5), q(0.9),
                q(0.99));
  } else {
    std::printf("%s floats=%zu bytes=%zu window=%zu count=%zu updates_per_s=%.0f MB_per_s=%.1f\n",
                net.insecure ? "plain" : "tls", floats, msg.size_bytes(), window, count,
                count / seconds, mb / seconds);
  }
  return 0;
}
