#include "actors/federation.hpp"

#include <atomic>
#include <chrono>
#include <sys/resource.h>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <algorithm>
#include <thread>

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <caf/io/all.hpp>
#include <caf/openssl/all.hpp>

#include "actors/fault_layer.hpp"
#include "actors/run_setup.hpp"
#include "actors/resume.hpp"
#include "actors/server.hpp"
#include "actors/transport_guard.hpp"
#include "runtime/call_syntax.hpp"
#include "runtime/durable.hpp"
#include "runtime/report.hpp"
#include "runtime/rng.hpp"
#include "models/device.hpp"
#include "models/federated.hpp"

namespace fedsp {

namespace {

class federation_config : public caf::actor_system_config {
public:
  federation_config() {
    add_message_type<wire_buffer>("fedsp::wire_buffer");
    // CAF's "sharing" scheduler (one queue, idle threads sleep on it) with
    // one thread per core. The default, work stealing with at least four
    // threads, spins idle threads on the busy one's queue: on two cores an
    // actor that messages many others at once (the server's Shutdown to
    // 100,000 clients) then waits on that queue for minutes, and 100,000
    // clients took 11 min end to end against 18 s now (bench/README.md,
    // "100,000 clients in one process").
    set("scheduler.policy", caf::atom("sharing"));
    set("scheduler.max-threads",
        static_cast<std::size_t>(std::max(2u, std::thread::hardware_concurrency())));
  }
};

/// run.json: how the run was started, for `fedsp resume`: the scenario's
/// text (a later edit of the file does not change a resumed run), where it
/// was (relative paths in it are anchored there) and the seed.
std::optional<error> write_run_record(const scenario& sc, const run_options& opts) {
  json rec = json::object{{"format", 1},
                          {"scenario", sc.path.empty()
                                         ? std::string()
                                         : std::filesystem::absolute(sc.path).string()},
                          {"scenario_text", sc.source},
                          {"seed", std::to_string(sc.seed)},
                          {"dump_dir", opts.dump_dir}};
  if (opts.serve) // a served run is resumed served, on the same address
    rec.set("serve", json::object{{"host", opts.serve->host},
                                  {"port", static_cast<double>(opts.serve->port)},
                                  {"certs", opts.serve->certs_dir.empty()
                                              ? std::string()
                                              : std::filesystem::absolute(opts.serve->certs_dir)
                                                  .string()},
                                  {"insecure", opts.serve->insecure}});
  return write_file_atomic(opts.out_dir + "/run.json", rec.dump() + "\n");
}

/// fedsp serve: the clients live in the join processes, so only the server
/// side's crashes can be injected here; a client-side fault is refused.
std::optional<error> check_served_faults(const scenario& sc) {
  std::set<std::string> client_side;
  for (auto& f : sc.faults.faults)
    if (f.is_client_side())
      client_side.insert(to_string(f.kind));
  if (client_side.empty())
    return std::nullopt;
  std::string kinds;
  for (auto& k : client_side)
    kinds += (kinds.empty() ? "" : ", ") + k;
  return error{errc::bad_scenario,
               "fedsp serve does not take the scenario's " + kinds
                 + " fault(s): they act on clients and the links to them, which live in "
                   "the join processes (use fedsp run; the server side's aggregator_crash, "
                   "worker_crash and server_crash work with fedsp serve)"};
}

/// A resumed run's first events: what it goes on from, the updates a
/// salvage lost (said loudly, recorded for check), and a publish event a
/// crash between checkpoint and event lost (written now, marked recovered).
void announce_resume(run_context& ctx, const resume_point& rp) {
  ctx.event("resumed",
            json::object{{"version", rp.ck ? number_or(rp.ck->state, "version", 0) : 0.0},
                         {"checkpoint", rp.ck.has_value()},
                         {"replayed_updates", logged_updates(rp.replay)},
                         {"torn_records", rp.torn},
                         {"first_task", rp.first_task}});
  if (!rp.lost.empty()) { // fedsp resume --salvage
    json::array ids;
    for (auto id : rp.lost)
      ids.push_back(id);
    ctx.event("updates_lost",
              json::object{{"count", rp.lost.size()},
                           {"tasks", std::move(ids)},
                           {"reason", "not in the damaged write-ahead log "
                                      "(fedsp resume --salvage)"}},
              true);
    ctx.log->error("resume --salvage: {} acknowledged update(s) lost (task {})", rp.lost.size(),
                   task_list(rp.lost));
  }
  if (!rp.ck)
    return;
  auto* pub = rp.ck->state.find("publish");
  if (pub != nullptr && pub->is_object() && !rp.published.count(number_or(*pub, "version", -1))) {
    json ev = *pub;
    ev.set("recovered", true);
    ctx.event("publish", ev);
  }
}

/// Injected faults by kind and restarts, over every process of the run
/// (all of them append to one events.jsonl), into the summary.
void count_faults(const std::string& events_path, json& summary) {
  json faults = json::object{};
  std::map<std::string, std::uint64_t> by_kind;
  std::uint64_t resumes = 0;
  std::ifstream in(events_path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.find("\"type\":\"fault\"") == std::string::npos
        && line.find("\"type\":\"resumed\"") == std::string::npos)
      continue;
    auto ev = json::parse(line);
    if (!ev)
      continue;
    auto* type = ev.value().find("type");
    if (type->as_string() == "resumed")
      ++resumes;
    else if (auto* k = ev.value().find("kind"); k != nullptr && k->is_string())
      ++by_kind[k->as_string()];
  }
  for (auto& [k, n] : by_kind)
    faults.set(k, n);
  summary.set("faults_injected", faults);
  summary.set("resumes", resumes);
}

/// Where the run driver is, once spawned: the event observer below reaches
/// it from whichever thread writes an event.
struct driver_slot {
  std::mutex mtx;
  caf::actor driver;
};

/// With crash faults in the plan, every publish event, and every event at
/// or after the first time-triggered crash still to fire, goes to the run
/// driver, which decides when a crash fires (docs/faults.md).
void watch_for_crashes(run_context& ctx, const scenario& sc, const std::set<std::size_t>& fired,
                       const std::shared_ptr<driver_slot>& slot) {
  double next_at = std::numeric_limits<double>::infinity();
  bool crashes = false;
  for (auto& f : sc.faults.faults)
    if (info(f.kind).crash) {
      crashes = true;
      if (!f.at_version && !fired.count(f.index))
        next_at = std::min(next_at, f.at_s);
    }
  if (!crashes)
    return;
  ctx.observe = [slot, next_at](const std::string& type, double t, const json& fields) {
    bool published = type == "publish";
    if (!published && t < next_at)
      return;
    caf::actor to;
    {
      std::lock_guard<std::mutex> g(slot->mtx);
      to = slot->driver;
    }
    if (to)
      caf::anon_send(to, observe_atom::value,
                     static_cast<std::uint64_t>(number_or(fields, "version", 0)), t, published);
  };
}

} // namespace

result<std::pair<scenario, run_options>> load_run(const std::string& run_dir) {
  auto path = run_dir + "/run.json";
  auto text = read_bounded_file(path, limits::run_record_bytes, "run record");
  if (!text)
    return error{errc::io, "'" + run_dir + "' is not a run directory: " + text.err().text};
  auto rec = json::parse(text.value());
  if (!rec || !rec.value().is_object() || rec.value().find("scenario") == nullptr
      || !rec.value().find("scenario")->is_string())
    return error{errc::malformed, path + ": not a run record"};
  auto& r = rec.value();
  auto sc_path = r.find("scenario")->as_string();
  auto* sc_text = r.find("scenario_text");
  if (sc_text == nullptr || !sc_text->is_string())
    return error{errc::malformed, path + ": no scenario_text"};
  if (sc_text->as_string().empty())
    return error{errc::bad_scenario, path + ": the run was started from a scenario built in "
                                            "code, not read from text; it cannot be resumed"};
  auto sc = parse_scenario(sc_text->as_string(), sc_path);
  if (!sc)
    return error{errc::bad_scenario, path + ": the run's scenario no longer reads: "
                                       + sc.err().text};
  if (auto* seed = r.find("seed"); seed != nullptr && seed->is_string()) {
    std::uint64_t n = 0;
    if (!parse_unsigned(seed->as_string(), 0, ~std::uint64_t{0}, n))
      return error{errc::malformed, path + ": 'seed' is not an integer in [0, 2^64 - 1]"};
    sc.value().seed = n;
  }
  if (!sc.value().durability.checkpoints)
    return error{errc::bad_scenario, "the run was started with durability.checkpoints: false; "
                                     "there is nothing to resume from"};
  run_options opts;
  opts.out_dir = run_dir;
  opts.resume = true;
  if (auto* d = r.find("dump_dir"); d != nullptr && d->is_string())
    opts.dump_dir = d->as_string();
  if (auto* s = r.find("serve"); s != nullptr && s->is_object()) {
    auto* host = s->find("host");
    auto* port = s->find("port");
    auto* certs = s->find("certs");
    auto* insecure = s->find("insecure");
    if (host == nullptr || !host->is_string() || port == nullptr || !port->is_number()
        || certs == nullptr || !certs->is_string() || insecure == nullptr || !insecure->is_bool())
      return error{errc::malformed, path + ": 'serve' needs host, port, certs and insecure"};
    network_options net;
    net.host = host->as_string();
    net.port = static_cast<std::uint16_t>(port->as_number());
    net.certs_dir = certs->as_string();
    net.insecure = insecure->as_bool();
    opts.serve = net; // the token is read when the run starts (fedsp resume)
  }
  return std::make_pair(std::move(sc).value(), opts);
}

namespace {

/// A run's folder: a fresh run records how it was started and clears what
/// an earlier run left there, a resumed one reads back where to go on from.
result<resume_point> prepare_run_dir(const scenario& sc, const run_options& opts,
                                     spdlog::logger& log) {
  namespace fs = std::filesystem;
  std::error_code ec;
  resume_point rp;
  if (opts.resume) {
    auto got = read_resume_point(opts.out_dir, opts.salvage);
    if (!got)
      return got.err();
    rp = std::move(got).value();
    for (auto& note : rp.notes)
      log.warn("resume: {}", note);
    return rp;
  }
  for (auto* f : {"checkpoint.bin", "summary.json"})
    fs::remove(opts.out_dir + "/" + f, ec);
  fs::remove_all(opts.out_dir + "/wal", ec);
  if (auto err = write_run_record(sc, opts))
    return *err;
  return rp;
}

/// What every actor of the run shares and the run's thread owns: the
/// clocks, events.jsonl, the message dump, the traffic meter, and the
/// context pointing at them.
struct run_io {
  real_clock clock;
  timeline tl; // the server's event order; on the virtual clock also the time
  std::unique_ptr<event_log> events;
  std::unique_ptr<message_dump> dump;
  traffic_meter traffic;
  std::shared_ptr<run_context> ctx = std::make_shared<run_context>();
  explicit run_io(double t0) : clock(1.0, t0) { tl.start_at(t0); }
};

result<std::unique_ptr<run_io>> open_run_io(const scenario& sc, const run_options& opts,
                                            const resume_point& rp,
                                            std::shared_ptr<spdlog::logger> log) {
  double t0 = (rp.ck ? number_or(rp.ck->state, "t", 0) : 0.0) + opts.downtime_s;
  auto io = std::make_unique<run_io>(t0);
  try {
    io->events = std::make_unique<event_log>(opts.out_dir + "/events.jsonl", opts.resume);
    if (!opts.dump_dir.empty())
      io->dump = std::make_unique<message_dump>(opts.dump_dir);
  } catch (const std::exception& e) {
    return error{errc::io, e.what()};
  }
  auto& ctx = *io->ctx;
  ctx.events = io->events.get();
  ctx.virtual_time = sc.federation.clock == "virtual";
  ctx.clock = ctx.virtual_time ? static_cast<const run_clock*>(&io->tl) : &io->clock;
  ctx.dump = io->dump.get();
  ctx.log = std::move(log);
  ctx.traffic = &io->traffic;
  if (opts.resume)
    announce_resume(ctx, rp);
  return io;
}

/// Everything a run needs before its actors start.
struct run_inputs {
  const scenario& sc;
  const run_options& opts;
  std::shared_ptr<const scenario> shared_sc;
  method_plan plan;
  std::shared_ptr<server_session> session;
  shard_list shards;
  std::uint32_t clients_n = 0;
  std::shared_ptr<const fault_plan> faults;
  std::shared_ptr<run_outcome> outcome;
  device_plan devices; // compute.device resolved; worker w runs on devices[w % n]
  std::shared_ptr<session_pager> pager; // compute.device_memory_gb > 0, else none
};

/// The run's actors, as spawned.
struct run_actors {
  std::vector<worker_actor> workers;
  server_actor server;
  std::vector<client_actor> clients; // by id; none for one a crash killed
  std::vector<caf::actor> links;
  caf::actor pulse; // the clients' beat
  caf::actor driver;

  /// Stops them all: `kill` for a server crash (nothing in order; what
  /// survives is on disk), else an orderly shutdown.
  void stop(caf::scoped_actor& self, caf::exit_reason how) {
    if (driver)
      self->send_exit(driver, how);
    self->send_exit(server, how);
    for (auto& c : clients)
      if (c)
        self->send_exit(c, how);
    for (auto& l : links)
      self->send_exit(l, how);
    for (auto& w : workers)
      self->send_exit(w, how);
    if (pulse)
      self->send_exit(pulse, how);
  }
};

/// Clients that a client_crash already killed stay dead in a resumed run.
std::set<std::uint32_t> crashed_clients(const scenario& sc, const resume_point& rp) {
  std::set<std::uint32_t> crashed;
  for (auto i : rp.fired)
    if (i < sc.faults.faults.size() && sc.faults.faults[i].kind == fault_kind::client_crash)
      crashed.insert(sc.faults.faults[i].clients.begin(), sc.faults.faults[i].clients.end());
  return crashed;
}

server_config server_config_for(const run_inputs& in, resume_point& rp, worker_actor worker,
                                timeline& tl, std::uint32_t absent) {
  auto& sc = in.sc;
  server_config scfg;
  scfg.sc = in.shared_sc;
  scfg.plan = in.plan;
  scfg.session = in.session;
  scfg.worker = std::move(worker);
  scfg.expected_clients = in.clients_n;
  scfg.devices = in.devices.devices;
  scfg.clock = &tl;
  if (sc.durability.checkpoints)
    scfg.run_dir = in.opts.out_dir;
  scfg.wal_sync_each = sc.durability.wal_sync == "fsync";
  scfg.resuming = in.opts.resume;
  scfg.resume = std::move(rp.ck);
  scfg.replay = std::move(rp.replay);
  scfg.first_task = rp.first_task;
  scfg.absent = absent;
  if (in.opts.serve)
    scfg.join_token = in.opts.serve->token;
  return scfg;
}

/// fedsp serve: the server listens for join nodes (the join token is
/// checked at the transport, before CAF reads a byte of a connection:
/// actors/transport_guard.hpp).
std::optional<error> publish_server(caf::actor_system& sys, const run_context& ctx,
                                    const server_actor& srv, const network_options& net,
                                    std::uint32_t clients_n) {
  guard::arm_server(net.token);
  auto bound = net.insecure ? sys.middleman().publish(srv, net.port, net.host.c_str(), true)
                            : caf::openssl::publish(srv, net.port, net.host.c_str(), true);
  if (!bound)
    return error{errc::io, "cannot listen on " + net.host + ":" + std::to_string(net.port)
                             + ": " + sys.render(bound.error())};
  ctx.log->info("listening on {}:{} ({}) for {} client(s)", net.host, *bound,
                net.insecure ? "plain text: --insecure" : "TLS", clients_n);
  ctx.event("listening", json::object{{"host", net.host}, {"port", *bound},
                                      {"tls", !net.insecure}});
  return std::nullopt;
}

/// The clients of this process, each talking to the server directly or,
/// when the plan acts on messages, through its link (the fault layer).
void spawn_clients(caf::actor_system& sys, const context_ptr& ctx, const run_inputs& in,
                   const std::set<std::uint32_t>& crashed, run_actors& a) {
  auto srv = caf::actor_cast<caf::actor>(a.server); // a link relays its envelopes untyped
  auto workers_n = static_cast<std::uint32_t>(a.workers.size());
  auto board = std::make_shared<pulse_board>(in.clients_n);
  for (std::uint32_t c = 0; c < in.clients_n; ++c) {
    if (crashed.count(c)) {
      a.clients.push_back(client_actor{});
      continue;
    }
    caf::actor to = srv;
    if (in.faults->needs_links()) {
      a.links.push_back(sys.spawn(
        link, ctx, link_config{c, srv, in.faults, in.sc.seed, in.sc.federation.silence_s / 4}));
      to = a.links.back();
    }
    client_config ccfg{c, in.shards[c], in.shared_sc, to, a.workers[(c + 1) % workers_n], {},
                       board, c, in.pager};
    for (std::uint32_t k = 2; k <= workers_n; ++k) // the others, in turn
      ccfg.spares.push_back(a.workers[(c + k) % workers_n]);
    a.clients.push_back(sys.spawn(client, ctx, std::move(ccfg)));
  }
  std::vector<caf::actor> handles;
  for (auto& c : a.clients)
    handles.push_back(caf::actor_cast<caf::actor>(c));
  a.pulse = spawn_pulse(sys, client_beat(in.sc), board, std::move(handles));
}

/// Runs the federation's actors until the run ends (finished, failed, or a
/// server crash); every actor is gone when this returns.
result<run_outcome::value_t> run_actors_until_done(run_inputs& in, run_io& io, resume_point& rp,
                                                   const std::shared_ptr<driver_slot>& slot) {
  federation_config cfg;
  if (in.opts.serve)
    if (auto err = configure_network(cfg, *in.opts.serve))
      return *err;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  context_ptr ctx = io.ctx;
  run_actors a;
  a.workers = spawn_workers(sys, in.devices, in.sc.compute.workers, in.sc.model.kind == "gpt");
  auto crashed = crashed_clients(in.sc, rp);
  a.server = spawn_server(sys, ctx, server_config_for(in, rp, a.workers[0], io.tl,
                                                      static_cast<std::uint32_t>(crashed.size())));
  if (in.opts.serve) { // the clients come from join nodes
    if (auto err = publish_server(sys, *ctx, a.server, *in.opts.serve, in.clients_n)) {
      a.stop(self, caf::exit_reason::kill);
      return *err;
    }
  } else {
    spawn_clients(sys, ctx, in, crashed, a);
  }
  driver_config dcfg{caf::actor_cast<caf::actor>(a.server), {}, a.workers, in.faults, rp.fired,
                     in.outcome, ctx->virtual_time};
  for (auto& c : a.clients)
    dcfg.clients.push_back(c ? caf::actor_cast<caf::actor>(c) : caf::actor{});
  a.driver = sys.spawn(run_driver, ctx, std::move(dcfg));
  {
    std::lock_guard<std::mutex> g(slot->mtx);
    slot->driver = a.driver;
  }
  auto ended = in.outcome->wait();
  {
    std::lock_guard<std::mutex> g(slot->mtx);
    slot->driver = nullptr;
  }
  a.stop(self, ended.k == run_outcome::kind::server_crash ? caf::exit_reason::kill
                                                           : caf::exit_reason::user_shutdown);
  return ended; // (the actor system waits for every actor as it goes)
}

/// The server's summary, completed with what only this process knows, and
/// written as summary.json and the report.
result<json> write_summary(const std::string& summary_text, const run_inputs& in, run_io& io,
                           std::chrono::steady_clock::time_point started) {
  auto& dir = in.opts.out_dir;
  auto parsed = json::parse(summary_text);
  if (!parsed)
    return parsed.err();
  auto summary = std::move(parsed).value();
  summary.set("prompt_parameters", in.session->initial_prompts().numel());
  {
    json::array devs, workers;
    for (auto& d : in.devices.devices)
      devs.emplace_back(d);
    for (std::uint32_t w = 0; w < in.sc.compute.workers; ++w)
      workers.emplace_back(in.devices.device_of_worker(w));
    json compute = json::object{{"requested", in.sc.compute.device},
                                {"devices", json(std::move(devs))},
                                {"worker_devices", json(std::move(workers))},
                                {"dtype", in.sc.compute.dtype}};
    if (!in.devices.note.empty())
      compute.set("note", in.devices.note);
    if (in.pager) {
      in.pager->drain(); // (a prefetch still copying would be counted half)
      auto p = in.pager->stats();
      compute.set("paging", json::object{{"budget_bytes", p.budget_bytes},
                                         {"peak_resident_bytes", p.peak_resident_bytes},
                                         {"page_ins", p.page_ins},
                                         {"evictions", p.evictions},
                                         {"over_budget", p.over_budget},
                                         {"page_in_seconds", p.page_in_seconds},
                                         {"offload_seconds", p.offload_seconds},
                                         {"prefetched", p.prefetched},
                                         {"prefetch_skipped", p.prefetch_skipped},
                                         {"prefetch_seconds", p.prefetch_seconds}});
    }
    summary.set("compute", compute);
  }
  summary.set("events", io.events->count());
  struct rusage ru {};
  if (getrusage(RUSAGE_SELF, &ru) == 0)
    summary.set("peak_rss_mb", static_cast<double>(ru.ru_maxrss) / 1024.0); // Linux: KiB
  summary.set("wall_seconds",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - started)
                .count());
  io.events->flush(); // the report reads it
  count_faults(dir + "/events.jsonl", summary);
  std::ofstream out(dir + "/summary.json");
  out << summary.dump() << "\n";
  out.close();
  if (!out)
    return error{errc::io, "cannot write " + dir + "/summary.json"};
  if (auto err = write_run_report(dir))
    return *err;
  return summary;
}

} // namespace

result<json> run_federation(const scenario& sc, const run_options& opts) {
  if (opts.serve && sc.federation.clock != "real") { // nodes live in wall-clock time
    auto copy = sc;
    copy.federation.clock = "real";
    return run_federation(copy, opts);
  }
  if (opts.serve)
    if (auto err = check_served_faults(sc))
      return *err;
  // Devices (models/device.hpp): worker w runs on dev.device_of_worker(w);
  // the server's models live on worker 0's device, each client's session on
  // its worker's (docs/architecture.md, "Devices").
  auto devices = resolve_devices(sc.compute.device);
  if (!devices)
    return devices.err();
  auto dev = devices.value();
  if (auto err = check_dtype(sc.compute.dtype, dev))
    return *err;
  if (sc.compute.workers_per_device > 0) {
    auto workers = static_cast<std::uint32_t>(dev.devices.size()) * sc.compute.workers_per_device;
    if (sc.compute.workers != workers) {
      auto copy = sc;
      copy.compute.workers = workers;
      return run_federation(copy, opts);
    }
  }
  std::error_code ec;
  std::filesystem::create_directories(opts.out_dir, ec);
  if (ec)
    return error{errc::io, "cannot create run directory '" + opts.out_dir
                             + "': " + ec.message()};
  auto data = load_task_split(sc);
  if (!data)
    return data.err();
  auto plan = plan_of(sc.method.name);
  if (!plan)
    return plan.err();
  auto shards = shard_data(sc, data.value());
  if (!shards)
    return shards.err();
  auto log = make_run_logger("fedsp", opts.out_dir, opts.console);
  if (!dev.note.empty())
    log->info("{}", dev.note);
  auto rp = prepare_run_dir(sc, opts, *log);
  if (!rp)
    return rp.err();
  auto io_made = open_run_io(sc, opts, rp.value(), log);
  if (!io_made)
    return io_made.err();
  auto& io = *io_made.value();
  unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  set_compute_threads(static_cast<int>(
    sc.compute.threads ? sc.compute.threads : std::max(1u, cores / sc.compute.workers)));
  auto session = server_session::create(sc, data.value(), dev.device_of_worker(0));
  if (!session)
    return session.err();
  // Centralised training: one party holds the union of the clients' data.
  run_inputs in{sc,
                opts,
                std::make_shared<const scenario>(sc),
                plan.value(),
                session.value(),
                std::move(shards).value(),
                sc.method.name == "centralized" ? 1u : sc.clients.count,
                std::make_shared<const fault_plan>(sc.faults),
                std::make_shared<run_outcome>(),
                dev,
                // one device in use: one pager (docs/architecture.md, "Devices")
                sc.compute.device_memory_gb > 0
                  ? std::make_shared<session_pager>(
                      static_cast<std::uint64_t>(sc.compute.device_memory_gb * 1e9),
                      sc.compute.prefetch)
                  : nullptr};
  log->info("scenario '{}': method {}, {} client(s), {} round(s), global model {} parameters",
            sc.name, sc.method.name, in.clients_n, sc.federation.rounds,
            in.session->global_parameters());
  // A durable write that fails (a full disk) stops the run: what is on disk
  // stays consistent and resumable (docs/faults.md "The durability contract").
  // Any other stop (the federation makes no progress) would happen again
  // on resume, which restores the same version: the message says so.
  io.ctx->write_failed = [outcome = in.outcome, dir = opts.out_dir](const std::string& what,
                                                                    errc code) {
    auto tail = code == errc::io
                  ? "; run directory " + dir + " can be resumed ('fedsp resume " + dir
                      + "') once the cause is fixed"
                  : "; resuming run directory " + dir
                      + " restores this version and would stop the same way: change what makes"
                        " the updates bad (a learning rate, a corrupting fault) and start a new run";
    outcome->set({run_outcome::kind::failed, "", what + tail, 0, 0, code});
  };
  io.events->on_error([ctx = io.ctx](const std::string& what) { ctx->stop_on(what); });
  auto slot = std::make_shared<driver_slot>();
  watch_for_crashes(*io.ctx, sc, rp.value().fired, slot);

  auto started = std::chrono::steady_clock::now();
  auto ended = run_actors_until_done(in, io, rp.value(), slot);
  if (!ended)
    return ended.err();
  auto& end = ended.value();
  if (end.k == run_outcome::kind::server_crash) {
    io.events.reset();
    io.dump.reset();
    log->warn("server crashed (fault {}); restarting from {} in {} s", end.fault, opts.out_dir,
              end.restart_after_s);
    log->flush();
    auto again = opts;
    again.resume = true;
    again.downtime_s = end.restart_after_s;
    if (!io.ctx->virtual_time)
      std::this_thread::sleep_for(std::chrono::duration<double>(end.restart_after_s));
    return run_federation(sc, again);
  }
  if (end.k == run_outcome::kind::failed) {
    log->error("run failed: {}", end.error);
    if (!end.error.empty())
      return error{end.code, end.error};
  }
  if (end.k != run_outcome::kind::finished || end.summary.empty())
    return error{errc::unknown, "the run did not complete (see " + opts.out_dir
                                  + "/fedsp.log)"};
  return write_summary(end.summary, in, io, started);
}

} // namespace fedsp
