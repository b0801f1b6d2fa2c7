#include "actors/federation.hpp"

#include <chrono>
#include <sys/resource.h>
#include <filesystem>
#include <fstream>

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "actors/server.hpp"
#include "runtime/report.hpp"
#include "runtime/rng.hpp"
#include "models/federated.hpp"

namespace fedsp {

namespace {

/// The clients' shards of the training data, as the scenario partitions it.
result<std::vector<std::vector<std::size_t>>> partition(const scenario& sc,
                                                        const std::vector<mc_example>& train,
                                                        std::uint32_t clients) {
  auto seed = mix_seed(sc.seed, 11);
  if (sc.clients.partition == "dirichlet") {
    std::vector<int> labels;
    for (auto& ex : train)
      labels.push_back(ex.label);
    return partition_dirichlet(labels, clients, sc.clients.alpha, seed);
  }
  if (sc.clients.partition == "group") {
    std::vector<std::string> groups;
    for (auto& ex : train)
      groups.push_back(ex.group);
    return partition_by_group(groups, clients);
  }
  return partition_iid(train.size(), clients, seed);
}

std::shared_ptr<spdlog::logger> make_logger(const run_options& opts) {
  std::vector<spdlog::sink_ptr> sinks;
  sinks.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(
    opts.out_dir + "/fedsp.log", true));
  if (opts.console)
    sinks.push_back(std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  auto log = std::make_shared<spdlog::logger>("fedsp", sinks.begin(), sinks.end());
  log->set_pattern("[%H:%M:%S.%e] [%^%l%$] %v");
  log->flush_on(spdlog::level::info);
  return log;
}

class federation_config : public caf::actor_system_config {
public:
  federation_config() {
    add_message_type<wire_buffer>("fedsp::wire_buffer");
  }
};

} // namespace

result<json> run_federation(const scenario& sc, const run_options& opts) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(opts.out_dir, ec);
  if (ec)
    return error{errc::io, "cannot create run directory '" + opts.out_dir
                             + "': " + ec.message()};
  auto data = load_task_split(sc);
  if (!data)
    return data.err();
  auto plan = plan_of(sc.method.name);
  if (!plan)
    return plan.err();
  // Centralised training: one party holds the union of the clients' data.
  auto clients_n = sc.method.name == "centralized" ? 1u : sc.clients.count;
  if (data.value().train.size() < clients_n)
    return error{errc::bad_scenario, "the training split has " + std::to_string(data.value().train.size())
                                       + " examples, fewer than the " + std::to_string(clients_n)
                                       + " clients"};
  auto shards = partition(sc, data.value().train, clients_n);
  if (!shards)
    return error{errc::bad_scenario, shards.err().text};

  auto log = make_logger(opts);
  real_clock clock;
  timeline tl; // the server's event order; on the virtual clock also the time
  std::unique_ptr<event_log> events;
  std::unique_ptr<message_dump> dump;
  try {
    events = std::make_unique<event_log>(opts.out_dir + "/events.jsonl");
    if (!opts.dump_dir.empty())
      dump = std::make_unique<message_dump>(opts.dump_dir);
  } catch (const std::exception& e) {
    return error{errc::io, e.what()};
  }
  traffic_meter traffic;
  auto ctx = std::make_shared<run_context>();
  ctx->events = events.get();
  ctx->virtual_time = sc.federation.clock == "virtual";
  ctx->clock = ctx->virtual_time ? static_cast<const run_clock*>(&tl) : &clock;
  ctx->dump = dump.get();
  ctx->log = log;
  ctx->traffic = &traffic;

  auto workers_n = sc.compute.workers;
  unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  set_compute_threads(static_cast<int>(
    sc.compute.threads ? sc.compute.threads : std::max(1u, cores / workers_n)));

  auto session = server_session::create(sc, data.value());
  if (!session)
    return session.err();
  auto shared_sc = std::make_shared<const scenario>(sc);
  log->info("scenario '{}': method {}, {} client(s), {} round(s), global model {} parameters",
            sc.name, sc.method.name, clients_n, sc.federation.rounds,
            session.value()->global_parameters());

  auto started = std::chrono::steady_clock::now();
  std::string summary_text;
  caf::error failure;
  {
    federation_config cfg;
    caf::actor_system sys{cfg};
    std::vector<worker_actor> workers;
    for (std::uint32_t w = 0; w < workers_n; ++w)
      // GPT work blocks for seconds: each worker gets its own thread. The
      // null and mlp kinds' jobs take microseconds to a millisecond: their
      // workers share CAF's scheduler threads and skip a thread hand-off.
      workers.push_back(sc.model.kind == "gpt" ? sys.spawn<caf::detached>(worker)
                                               : sys.spawn(worker));
    server_config scfg{shared_sc, plan.value(), session.value(), workers[0], clients_n, &tl};
    auto srv = sys.spawn(server, ctx, std::move(scfg));
    caf::scoped_actor self{sys};
    // Clients send everything to the server; its clock hands updates to
    // its aggregator in order.
    auto& train = data.value().train;
    std::vector<client_actor> clients;
    {
      for (std::uint32_t c = 0; c < clients_n; ++c) {
        auto shard = std::make_shared<std::vector<mc_example>>();
        for (auto i : shards.value()[c])
          shard->push_back(train[i]);
        client_config ccfg{c, shard, shared_sc, srv, workers[(c + 1) % workers_n]};
        clients.push_back(sys.spawn(client, ctx, std::move(ccfg)));
      }
      self->request(srv, caf::infinite, run_atom::value)
        .receive([&](std::string& s) { summary_text = std::move(s); },
                 [&](caf::error& err) { failure = err; });
    }
    if (failure)
      log->error("run failed: {}", sys.render(failure));
    self->send_exit(srv, caf::exit_reason::user_shutdown);
    for (auto& c : clients)
      self->send_exit(c, caf::exit_reason::user_shutdown);
    for (auto& w : workers)
      self->send_exit(w, caf::exit_reason::user_shutdown);
  } // the actor system waits for every actor here
  if (failure || summary_text.empty())
    return error{errc::unknown, "the run did not complete (see " + opts.out_dir
                                  + "/fedsp.log)"};
  auto parsed = json::parse(summary_text);
  if (!parsed)
    return parsed.err();
  auto summary = std::move(parsed).value();
  summary.set("prompt_parameters", session.value()->initial_prompts().numel());
  summary.set("events", events->count());
  struct rusage ru {};
  if (getrusage(RUSAGE_SELF, &ru) == 0)
    summary.set("peak_rss_mb", static_cast<double>(ru.ru_maxrss) / 1024.0); // Linux: KiB
  summary.set("wall_seconds",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - started)
                .count());
  events->flush(); // the report reads it
  std::ofstream out(opts.out_dir + "/summary.json");
  out << summary.dump() << "\n";
  out.close();
  if (!out)
    return error{errc::io, "cannot write " + opts.out_dir + "/summary.json"};
  if (auto err = write_run_report(opts.out_dir))
    return *err;
  return summary;
}

} // namespace fedsp
