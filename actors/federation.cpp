#include "actors/federation.hpp"

#include <chrono>
#include <filesystem>
#include <fstream>

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "actors/server.hpp"
#include "runtime/rng.hpp"

namespace fedsp {

namespace {

struct task_splits {
  std::vector<mc_example> train;
  std::vector<mc_example> test;
};

result<task_splits> load_data(const scenario& sc) {
  task_splits out;
  if (sc.data.kind == "synthetic") {
    auto all = make_synthetic_task(sc.data.train + sc.data.test, sc.seed);
    out.train.assign(all.begin(), all.begin() + sc.data.train);
    out.test.assign(all.begin() + sc.data.train, all.end());
  } else {
    auto train = load_task_jsonl(sc.data.dir + "/train.jsonl");
    if (!train)
      return train.err();
    auto test = load_task_jsonl(sc.data.dir + "/test.jsonl");
    if (!test)
      return test.err();
    out.train = std::move(train).value();
    out.test = std::move(test).value();
    if (out.train.size() < sc.clients.count)
      return error{errc::bad_scenario,
                   sc.data.dir + "/train.jsonl has " + std::to_string(out.train.size())
                     + " examples, fewer than the " + std::to_string(sc.clients.count)
                     + " clients"};
  }
  if (sc.eval.max_examples != 0 && out.test.size() > sc.eval.max_examples)
    out.test.resize(sc.eval.max_examples);
  return out;
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
  auto data = load_data(sc);
  if (!data)
    return data.err();

  auto log = make_logger(opts);
  real_clock clock;
  std::unique_ptr<event_log> events;
  std::unique_ptr<message_dump> dump;
  try {
    events = std::make_unique<event_log>(opts.out_dir + "/events.jsonl");
    if (!opts.dump_dir.empty())
      dump = std::make_unique<message_dump>(opts.dump_dir);
  } catch (const std::exception& e) {
    return error{errc::io, e.what()};
  }
  auto ctx = std::make_shared<run_context>();
  ctx->events = events.get();
  ctx->clock = &clock;
  ctx->dump = dump.get();
  ctx->log = log;

  auto workers_n = sc.compute.workers;
  unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  set_compute_threads(static_cast<int>(
    sc.compute.threads ? sc.compute.threads : std::max(1u, cores / workers_n)));

  // The global model gives the prompt layout and the version-0 prompts.
  prompt_model reference(sc.model, sc.seed);
  auto initial = reference.initial_prompts(mix_seed(sc.seed, 7));
  auto layout = reference.layout();
  log->info("scenario '{}': {} clients, {} rounds, model {} parameters, "
            "prompts {} values",
            sc.name, sc.clients.count, sc.federation.rounds,
            reference.num_parameters(), initial.numel());

  auto started = std::chrono::steady_clock::now();
  std::string summary_text;
  caf::error failure;
  {
    federation_config cfg;
    caf::actor_system sys{cfg};
    std::vector<worker_actor> workers;
    for (std::uint32_t w = 0; w < workers_n; ++w)
      workers.push_back(sys.spawn<caf::detached>(worker, sc.model, sc.seed));

    auto test = std::make_shared<const std::vector<mc_example>>(data.value().test);
    server_config scfg{sc.name,        sc.seed,   sc.clients.count, sc.federation,
                       sc.training,    initial,   layout,           workers[0],
                       test};
    auto srv = sys.spawn(server, ctx, std::move(scfg));
    caf::scoped_actor self{sys};
    // The server spawns its aggregator; clients send updates there directly.
    auto& train = data.value().train;
    auto shards = partition_iid(train.size(), sc.clients.count, mix_seed(sc.seed, 11));
    std::vector<client_actor> clients;
    aggregator_actor agg;
    self->request(srv, caf::infinite, aggregator_atom::value)
      .receive([&](aggregator_actor a) { agg = a; },
               [&](caf::error& err) { failure = err; });
    if (!failure) {
      for (std::uint32_t c = 0; c < sc.clients.count; ++c) {
        auto shard = std::make_shared<std::vector<mc_example>>();
        for (auto i : shards[c])
          shard->push_back(train[i]);
        client_config ccfg{c, shard, srv, agg, workers[(c + 1) % workers_n]};
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
  summary.set("model_parameters", reference.num_parameters());
  summary.set("prompt_parameters", initial.numel());
  summary.set("events", events->count());
  summary.set("wall_seconds",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - started)
                .count());
  std::ofstream out(opts.out_dir + "/summary.json");
  out << summary.dump() << "\n";
  if (!out)
    return error{errc::io, "cannot write " + opts.out_dir + "/summary.json"};
  return summary;
}

} // namespace fedsp
