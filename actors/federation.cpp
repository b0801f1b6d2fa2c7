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
#include "models/federated.hpp"

namespace fedsp {

namespace {

class federation_config : public caf::actor_system_config {
public:
  federation_config() {
    add_message_type<wire_buffer>("fedsp::wire_buffer");
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

result<json> run_federation(const scenario& sc, const run_options& opts) {
  namespace fs = std::filesystem;
  if (opts.serve && sc.federation.clock != "real") { // nodes live in wall-clock time
    auto copy = sc;
    copy.federation.clock = "real";
    return run_federation(copy, opts);
  }
  if (opts.serve)
    if (auto err = check_served_faults(sc))
      return *err;
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
  auto shards = shard_data(sc, data.value());
  if (!shards)
    return shards.err();

  auto log = make_run_logger("fedsp", opts.out_dir, opts.console);
  // Durability: a fresh run records how it was started and clears what an
  // earlier run left in the folder; a resumed one reads it back.
  auto durable = sc.durability.checkpoints;
  resume_point rp;
  if (opts.resume) {
    auto got = read_resume_point(opts.out_dir, opts.salvage);
    if (!got)
      return got.err();
    rp = std::move(got).value();
    for (auto& note : rp.notes)
      log->warn("resume: {}", note);
  } else {
    for (auto* f : {"checkpoint.bin", "summary.json"})
      fs::remove(opts.out_dir + "/" + f, ec);
    fs::remove_all(opts.out_dir + "/wal", ec);
    if (auto err = write_run_record(sc, opts))
      return *err;
  }
  double t0 = (rp.ck ? number_or(rp.ck->state, "t", 0) : 0.0) + opts.downtime_s;
  real_clock clock(1.0, t0);
  timeline tl; // the server's event order; on the virtual clock also the time
  tl.start_at(t0);
  std::unique_ptr<event_log> events;
  std::unique_ptr<message_dump> dump;
  try {
    events = std::make_unique<event_log>(opts.out_dir + "/events.jsonl", opts.resume);
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
  if (opts.resume)
    announce_resume(*ctx, rp);

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

  // The fault layer: its plan, the driver's triggers (every event is seen),
  // and how the run ends.
  auto plan_ptr = std::make_shared<const fault_plan>(sc.faults);
  auto outcome = std::make_shared<run_outcome>();
  // A durable write that fails (a full disk) stops the run: what is on disk
  // stays consistent and resumable (docs/faults.md "The durability contract").
  ctx->write_failed = [outcome, dir = opts.out_dir](const std::string& what) {
    outcome->set({run_outcome::kind::failed, "",
                  what + "; run directory " + dir + " can be resumed ('fedsp resume " + dir
                    + "') once the cause is fixed",
                  0, 0});
  };
  events->on_error([ctx](const std::string& what) { ctx->stop_on(what); });
  run_outcome::value_t ended;
  auto slot = std::make_shared<driver_slot>();
  watch_for_crashes(*ctx, sc, rp.fired, slot);

  auto started = std::chrono::steady_clock::now();
  std::string summary_text;
  caf::error failure;
  std::string failure_text; // why the run stopped (a failed write)
  {
    federation_config cfg;
    if (opts.serve)
      if (auto err = configure_network(cfg, *opts.serve))
        return *err;
    caf::actor_system sys{cfg};
    std::vector<worker_actor> workers;
    for (std::uint32_t w = 0; w < workers_n; ++w)
      // GPT work blocks for seconds: each worker gets its own thread. The
      // null and mlp kinds' jobs take microseconds to a millisecond: their
      // workers share CAF's scheduler threads and skip a thread hand-off.
      workers.push_back(sc.model.kind == "gpt" ? sys.spawn<caf::detached>(worker)
                                               : sys.spawn(worker));
    // Clients that a client_crash already killed stay dead in a resumed run.
    std::set<std::uint32_t> crashed;
    for (auto i : rp.fired)
      if (i < sc.faults.faults.size() && sc.faults.faults[i].kind == fault_kind::client_crash)
        crashed.insert(sc.faults.faults[i].clients.begin(), sc.faults.faults[i].clients.end());
    server_config scfg;
    scfg.sc = shared_sc;
    scfg.plan = plan.value();
    scfg.session = session.value();
    scfg.worker = workers[0];
    scfg.expected_clients = clients_n;
    scfg.clock = &tl;
    if (durable)
      scfg.run_dir = opts.out_dir;
    scfg.wal_sync_each = sc.durability.wal_sync == "fsync";
    scfg.resuming = opts.resume;
    scfg.resume = std::move(rp.ck);
    scfg.replay = std::move(rp.replay);
    scfg.first_task = rp.first_task;
    scfg.absent = static_cast<std::uint32_t>(crashed.size());
    if (opts.serve)
      scfg.join_token = opts.serve->token;
    auto srv = spawn_server(sys, ctx, std::move(scfg));
    // Clients, links and the driver hold it untyped: a link relays its
    // envelopes (actors/fault_layer.hpp).
    auto srv_any = caf::actor_cast<caf::actor>(srv);
    caf::scoped_actor self{sys};
    // Clients send everything to the server (through a link, the fault
    // layer, when the plan acts on messages); its clock hands updates to
    // its aggregator in order.
    std::vector<client_actor> clients;
    std::vector<caf::actor> links;
    if (opts.serve) { // the clients come from join nodes
      auto& net = *opts.serve;
      // The join token is checked at the transport, before CAF reads a
      // byte of a connection (actors/transport_guard.hpp).
      guard::arm_server(net.token);
      auto bound = net.insecure ? sys.middleman().publish(srv, net.port, net.host.c_str(), true)
                                : caf::openssl::publish(srv, net.port, net.host.c_str(), true);
      if (!bound) {
        auto why = sys.render(bound.error());
        self->send_exit(srv, caf::exit_reason::kill);
        for (auto& w : workers)
          self->send_exit(w, caf::exit_reason::kill);
        return error{errc::io, "cannot listen on " + net.host + ":" + std::to_string(net.port)
                                 + ": " + why};
      }
      log->info("listening on {}:{} ({}) for {} client(s)", net.host, *bound,
                net.insecure ? "plain text: --insecure" : "TLS", clients_n);
      ctx->event("listening", json::object{{"host", net.host}, {"port", *bound},
                                           {"tls", !net.insecure}});
    }
    for (std::uint32_t c = 0; c < clients_n && !opts.serve; ++c) {
      if (crashed.count(c)) {
        clients.push_back(client_actor{});
        continue;
      }
      auto& shard = shards.value()[c];
      caf::actor to = srv_any;
      if (plan_ptr->needs_links()) {
        links.push_back(sys.spawn(
          link, ctx, link_config{c, srv_any, plan_ptr, sc.seed, sc.federation.silence_s / 4}));
        to = links.back();
      }
      client_config ccfg{c, shard, shared_sc, to, workers[(c + 1) % workers_n], {}};
      for (std::uint32_t k = 2; k <= workers_n; ++k) // the others, in turn
        ccfg.spares.push_back(workers[(c + k) % workers_n]);
      clients.push_back(sys.spawn(client, ctx, std::move(ccfg)));
    }
    driver_config dcfg{srv_any, {}, workers, plan_ptr, rp.fired, outcome, ctx->virtual_time};
    for (auto& c : clients)
      dcfg.clients.push_back(c ? caf::actor_cast<caf::actor>(c) : caf::actor{});
    auto driver = sys.spawn(run_driver, ctx, std::move(dcfg));
    {
      std::lock_guard<std::mutex> g(slot->mtx);
      slot->driver = driver;
    }
    ended = outcome->wait();
    {
      std::lock_guard<std::mutex> g(slot->mtx);
      slot->driver = nullptr;
    }
    // A server crash: everything goes down at once, nothing is shut down
    // in order; what survives is on disk.
    auto how = ended.k == run_outcome::kind::server_crash ? caf::exit_reason::kill
                                                          : caf::exit_reason::user_shutdown;
    if (ended.k == run_outcome::kind::failed) {
      failure = caf::make_error(caf::sec::runtime_error, ended.error);
      log->error("run failed: {}", ended.error);
      failure_text = ended.error;
    }
    summary_text = ended.summary;
    self->send_exit(driver, how);
    self->send_exit(srv, how);
    for (auto& c : clients)
      if (c)
        self->send_exit(c, how);
    for (auto& l : links)
      self->send_exit(l, how);
    for (auto& w : workers)
      self->send_exit(w, how);
  } // the actor system waits for every actor here
  if (ended.k == run_outcome::kind::server_crash) {
    events.reset();
    dump.reset();
    log->warn("server crashed (fault {}); restarting from {} in {} s", ended.fault, opts.out_dir,
              ended.restart_after_s);
    log->flush();
    auto again = opts;
    again.resume = true;
    again.downtime_s = ended.restart_after_s;
    if (!ctx->virtual_time)
      std::this_thread::sleep_for(std::chrono::duration<double>(ended.restart_after_s));
    return run_federation(sc, again);
  }
  if (!failure_text.empty())
    return error{errc::io, failure_text};
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
  count_faults(opts.out_dir + "/events.jsonl", summary);
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
