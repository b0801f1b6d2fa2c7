// The commands that run, resume, check and compare federations, and those
// that spread one across machines (certs, serve, join).
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "actors/federation.hpp"
#include "cli/commands.hpp"
#include "cli/flags.hpp"
#include "runtime/call_syntax.hpp"
#include "runtime/report.hpp"
#include "runtime/run_check.hpp"
#include "runtime/scenario.hpp"

namespace fedsp::cli {
namespace {

/// A --set setting whose key names a file or folder (data.dir,
/// model.checkpoint, model.vocab_dir) with a relative value: the value made
/// absolute from the current folder, as a path on the command line reads.
/// (Paths inside a scenario stay relative to the scenario's file.)
std::string setting_from_cwd(const std::string& s) {
  auto eq = s.find('=');
  if (eq == std::string::npos)
    return s;
  auto key = s.substr(0, eq), value = s.substr(eq + 1);
  if ((key == "data.dir" || key == "model.checkpoint" || key == "model.vocab_dir")
      && !value.empty() && std::filesystem::path(value).is_relative())
    value = std::filesystem::absolute(value).lexically_normal().string();
  return key + "=" + value;
}

/// A fresh run must not wipe an interrupted one: a run directory with
/// run.json and no summary.json is refused unless --overwrite (a finished
/// run is replaced, with a line that says so: re-running a scenario into its
/// default folder is the common case).
std::optional<std::string> guard_out_dir(const std::string& dir, bool overwrite) {
  std::error_code ec;
  if (!std::filesystem::exists(dir + "/run.json", ec))
    return std::nullopt;
  bool finished = std::filesystem::exists(dir + "/summary.json", ec);
  if (!finished && !overwrite)
    return dir + " holds an unfinished run (run.json, no summary.json): finish it with "
                 "'fedsp resume " + dir + "', choose another --out, or pass --overwrite";
  std::fprintf(stderr, "fedsp: replacing the %s run in %s\n", finished ? "finished" : "unfinished",
               dir.c_str());
  return std::nullopt;
}

/// The join token a served run asks of its nodes: DIR/token; with
/// --insecure and no token file, "insecure" (what plain-text nodes present).
std::optional<std::string> set_serve_token(network_options& net) {
  auto token = read_token(net.certs_dir.empty() ? std::string("token") : net.certs_dir + "/token");
  if (token)
    net.token = token.value();
  else if (net.insecure)
    net.token = "insecure";
  else
    return token.err().text;
  return std::nullopt;
}

/// Runs the federation and prints its one-paragraph result.
int run_and_report(const scenario& scn, const run_options& opts) {
  auto summary = run_federation(scn, opts);
  if (!summary)
    return fail(summary.err().message(), summary.err().code == errc::bad_scenario ? 2 : 1);
  auto& s = summary.value();
  auto metric = [&](const char* when, const char* key) {
    auto* w = s.find(when);
    auto* g = w ? w->find("global") : nullptr;
    auto* v = g ? g->find(key) : nullptr;
    return v && v->is_number() ? v->as_number() : -1.0;
  };
  auto count = [&](const char* key) {
    auto* v = s.find(key);
    return v && v->is_number() ? v->as_number() : 0.0;
  };
  bool async = scn.federation.mode == "async";
  std::printf("run '%s' finished: version %.0f after %.0f %s (%.0f s on the %s clock), "
              "%.0f updates accepted, %.0f rejected, %.0f late, %.0f dropouts\n",
              scn.name.c_str(), count("final_version"),
              async ? count("updates_aggregated") : count("rounds"),
              async ? "aggregated updates" : "rounds", count("t_end"),
              opts.serve ? "real" : scn.federation.clock.c_str(), count("updates_accepted"),
              count("updates_rejected"), count("updates_late"), count("dropouts"));
  if (metric("initial", "test_acc") < 0 || std::isnan(metric("initial", "test_acc")))
    std::printf("test acc      not scored (model.kind %s has no test)\n",
                scn.model.kind.c_str());
  else
    std::printf("test acc      %.3f -> %.3f\ntest acc_norm %.3f -> %.3f\n",
                metric("initial", "test_acc"), metric("final", "test_acc"),
                metric("initial", "test_acc_norm"), metric("final", "test_acc_norm"));
  std::printf("outputs in %s/ (events.jsonl, summary.json, metrics.csv, report.html, "
              "fedsp.log)\n",
              opts.out_dir.c_str());
  return 0;
}

int cmd_run(const arguments& a) {
  std::uint64_t seed = 0;
  if (auto err = a.integer("--seed", 0, ~std::uint64_t{0}, seed))
    return fail(*err);
  if (a.positional().empty())
    return fail("run: no scenario file given (see 'fedsp run --help')");
  std::vector<std::string> settings;
  for (auto& s : a.all("--set"))
    settings.push_back(setting_from_cwd(s));
  auto sc = load_scenario(a.positional()[0], settings);
  if (!sc)
    return fail(sc.err().text);
  if (a.has("--seed"))
    sc.value().seed = seed;
  run_options opts;
  opts.out_dir = a.get("--out", "runs/" + sc.value().name);
  opts.dump_dir = a.get("--dump-messages");
  opts.console = !a.has("--quiet");
  if (auto why = guard_out_dir(opts.out_dir, a.has("--overwrite")))
    return fail("run: " + *why);
  return run_and_report(sc.value(), opts);
}

int cmd_resume(const arguments& a) {
  if (a.positional().empty())
    return fail("resume: no run directory given (see 'fedsp resume --help')");
  auto dir = a.positional()[0];
  std::error_code ec;
  if (std::filesystem::exists(dir + "/summary.json", ec)) {
    std::printf("run in %s already finished (summary.json is there); nothing to resume\n",
                dir.c_str());
    return 0;
  }
  auto run = load_run(dir);
  if (!run)
    return fail("resume: " + run.err().text, run.err().code == errc::bad_scenario ? 2 : 1);
  auto& [sc, opts] = run.value();
  opts.console = !a.has("--quiet");
  opts.salvage = a.has("--salvage");
  if ((a.has("--listen") || a.has("--certs")) && !opts.serve)
    return fail("resume: --listen and --certs are for a run started with 'fedsp serve'; " + dir
                + " ran its clients in one process");
  if (opts.serve) { // served again, where it was unless told otherwise
    if (a.has("--listen")) {
      auto ep = parse_endpoint(a.get("--listen"));
      if (!ep)
        return fail("resume: --listen: " + ep.err().text);
      opts.serve->host = ep.value().first;
      opts.serve->port = ep.value().second;
    }
    if (a.has("--certs"))
      opts.serve->certs_dir = a.get("--certs");
    if (auto err = set_serve_token(*opts.serve))
      return fail("resume: " + *err);
  }
  return run_and_report(sc, opts);
}

int cmd_check(const arguments& a) {
  if (a.positional().empty())
    return fail("check: give one run directory (see 'fedsp check --help')");
  auto& dir = a.positional()[0];
  auto rc = check_run(dir);
  if (!rc)
    return fail("check: " + rc.err().text);
  auto& c = rc.value();
  std::printf("%s: %llu version(s) published (last %llu), %llu accepted update(s), %llu folded, "
              "%llu unfolded (%llu pending or discarded), %llu fault(s) injected, %llu resume(s)\n",
              dir.c_str(), static_cast<unsigned long long>(c.versions),
              static_cast<unsigned long long>(c.last_version),
              static_cast<unsigned long long>(c.accepted),
              static_cast<unsigned long long>(c.folded),
              static_cast<unsigned long long>(c.unfolded),
              static_cast<unsigned long long>(c.allowed_unfolded),
              static_cast<unsigned long long>(c.faults),
              static_cast<unsigned long long>(c.resumes));
  for (auto& v : c.violations)
    std::printf("VIOLATION: %s\n", v.c_str());
  if (c.ok())
    std::printf("every invariant holds\n");
  return c.ok() ? 0 : 1;
}

int cmd_compare(const arguments& a) {
  std::vector<compared_method> methods;
  for (auto& m : a.positional()) {
    auto eq = m.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == m.size())
      return fail("compare: '" + m + "' is not LABEL=DIR[,DIR...]");
    compared_method c{m.substr(0, eq), {}};
    std::stringstream dirs(m.substr(eq + 1));
    for (std::string d; std::getline(dirs, d, ',');)
      if (!d.empty())
        c.dirs.push_back(d);
    methods.push_back(std::move(c));
  }
  if (!a.has("--out"))
    return fail("compare: --out FIG.svg is required");
  auto out = a.get("--out");
  std::string table;
  auto svg = comparison_svg(methods, a.get("--title", "test accuracy against round"), &table);
  if (!svg)
    return fail("compare: " + svg.err().text);
  std::ofstream f(out);
  f << svg.value();
  f.close();
  if (!f)
    return fail("compare: cannot write " + out);
  std::cout << table << "wrote " << out << "\n";
  return 0;
}

int cmd_certs(const arguments& a) {
  if (!a.has("--out"))
    return fail("certs: --out DIR is required (see 'fedsp certs --help')");
  auto out = a.get("--out");
  std::vector<std::string> nodes;
  if (a.has("--nodes")) {
    auto v = a.get("--nodes");
    std::stringstream names(v);
    for (std::string n; std::getline(names, n, ',');)
      nodes.push_back(n);
    if (v.empty() || v.back() == ',')
      nodes.push_back(""); // refused below, by name
  }
  auto made = make_dev_certs(out, nodes);
  if (!made)
    return fail("certs: " + made.err().text, made.err().code == errc::bad_argument ? 2 : 1);
  if (made.value().ca_reused)
    std::printf("kept the CA and token in %s (remove them for new ones)\n", out.c_str());
  else
    std::printf("wrote %s/ca.pem, ca.key, node.pem, node.key and token\n", out.c_str());
  for (auto& d : made.value().node_dirs)
    std::printf("wrote %s/ (node.pem, node.key, ca.pem, token): copy it to that node\n",
                d.c_str());
  return 0;
}

int cmd_serve(const arguments& a) {
  if (a.positional().empty())
    return fail("serve: no scenario file given (see 'fedsp serve --help')");
  if (!a.has("--listen"))
    return fail("serve: --listen HOST:PORT is required");
  bool insecure = a.has("--insecure");
  if (!a.has("--certs") && !insecure)
    return fail("serve: --certs DIR is required (or --insecure for plain text)");
  auto ep = parse_endpoint(a.get("--listen"));
  if (!ep)
    return fail("serve: --listen: " + ep.err().text);
  network_options net;
  net.host = ep.value().first;
  net.port = ep.value().second;
  net.certs_dir = a.get("--certs");
  net.insecure = insecure;
  if (auto err = set_serve_token(net))
    return fail("serve: " + *err);
  auto sc = load_scenario(a.positional()[0]);
  if (!sc)
    return fail(sc.err().text);
  run_options opts;
  opts.out_dir = a.get("--out", "runs/" + sc.value().name);
  opts.console = !a.has("--quiet");
  opts.serve = net;
  return run_and_report(sc.value(), opts);
}

int cmd_join(const arguments& a) {
  join_options opts;
  std::uint64_t attempts = static_cast<std::uint64_t>(opts.attempts);
  if (auto err = a.integer("--attempts", 1, 999, attempts))
    return fail(*err);
  opts.attempts = static_cast<int>(attempts);
  if (auto err = a.real("--reconnect-s", opts.reconnect_s))
    return fail(*err);
  if (!(opts.reconnect_s >= 0) || opts.reconnect_s > 1e6)
    return fail("join: --reconnect-s needs a number of seconds (0 to 1000000)");
  auto range = a.get("--clients");
  if (!a.has("--server") || range.empty())
    return fail("join: --server HOST:PORT and --clients RANGE are required");
  bool insecure = a.has("--insecure");
  if (!a.has("--certs") && !insecure)
    return fail("join: --certs DIR is required (or --insecure for plain text)");
  auto ep = parse_endpoint(a.get("--server"));
  if (!ep)
    return fail("join: --server: " + ep.err().text);
  auto ids = parse_client_set({range});
  if (!ids || ids.value().empty())
    return fail("join: --clients '" + range + "' is not an id or a range a-b");
  opts.first = *ids.value().begin();
  opts.last = *ids.value().rbegin();
  if (opts.last - opts.first + 1 != ids.value().size())
    return fail("join: --clients must be one range a-b");
  opts.net.host = ep.value().first;
  opts.net.port = ep.value().second;
  opts.net.certs_dir = a.get("--certs");
  opts.net.insecure = insecure;
  auto token_file = a.get("--token-file");
  if (token_file.empty() && !insecure)
    return fail("join: --token-file FILE is required");
  if (!token_file.empty()) {
    auto token = read_token(token_file);
    if (!token)
      return fail("join: " + token.err().text);
    opts.net.token = token.value();
  } else {
    opts.net.token = "insecure";
  }
  opts.out_dir = a.get("--out", "runs/join-" + range);
  opts.console = !a.has("--quiet");
  return join_federation(opts);
}

} // namespace

std::vector<command> federation_commands() {
  return {
    {"run",
     {{"run <scenario.yaml>", "run a federation in this process"}},
     R"(usage: fedsp run <scenario.yaml> [--out DIR] [--seed N] [--set KEY=VALUE]... [--dump-messages DIR] [--overwrite] [--quiet]

Runs the scenario's federation in this process: server, aggregator,
evaluator, clients and workers as CAF actors exchanging Cap'n Proto messages.

options:
  --out DIR             run directory (default: runs/<scenario name>); gets
                        events.jsonl, summary.json, metrics.csv, report.html
                        and fedsp.log. A finished run there is replaced (said
                        on stderr); an unfinished one (run.json without
                        summary.json) is refused: resume it, or --overwrite
  --overwrite           replace an unfinished run in --out
  --dump-messages DIR   also write every federation message to DIR, one file
                        each, readable with 'fedsp inspect' and 'capnp decode'
  --seed N              replace the scenario's seed
  --quiet               log to the run directory only, not the terminal
  --set KEY=VALUE       change one scenario key (repeatable), e.g.
                        --set data.dir=DIR --set federation.rounds=50;
                        data.dir, model.checkpoint and model.vocab_dir are
                        read from the current folder; the run records the
                        changed scenario

A bad scenario (unknown key, wrong type, out-of-range value, missing file)
exits with status 2 and a message naming the file, line and key.
)",
     {{{"--out"}, {"--dump-messages"}, {"--seed"}, {"--quiet", false}, {"--overwrite", false},
       {"--set", true, true}}, 1, "scenario"},
     cmd_run},
    {"resume",
     {{"resume <run-dir>", "finish an interrupted run from its checkpoint and log"}},
     R"(usage: fedsp resume <run-dir> [--salvage] [--listen HOST:PORT] [--certs DIR] [--quiet]

Finishes a run that was interrupted (killed, even with SIGKILL, at any
point): takes the scenario the run was started with (its text is kept in
run-dir/run.json, so later edits of the file do not matter), goes on from the last checkpoint (run-dir/
checkpoint.bin) and replays the updates accepted after it from the
write-ahead log (run-dir/wal/), so that no acknowledged update is lost and
none is aggregated twice. events.jsonl is appended to. On a finished run
(summary.json present) it says so and exits 0. See docs/faults.md.

What it cannot vouch for, it refuses (exit 1, naming the file): a damaged
log record (bad checksum, at segment and byte), acknowledged updates that
are not in the log (it was cut short or deleted), a task logged twice, a
checkpoint older than the versions events.jsonl announced, a missing
events.jsonl. --salvage goes on past a damaged or short log: it drops what
it cannot read, says how many acknowledged updates were lost, and records
them (an `updates_lost` event, which 'fedsp check' reports).

A run started with 'fedsp serve' is served again, on the address and with
the certificates it had (--listen, --certs: others); its join nodes
reconnect by themselves and get their clients back (docs/network.md).
)",
     {{{"--quiet", false}, {"--salvage", false}, {"--listen"}, {"--certs"}}, 1, "run directory"},
     cmd_resume},
    {"check",
     {{"check <run-dir>", "check a run against the invariants faults must not break"}},
     R"(usage: fedsp check <run-dir>

Checks a run directory against the invariants every run must keep, whatever
faults it met (docs/faults.md): published versions go up by one; every task's
update is folded into at most one version; every accepted update is folded
or reported pending (or discarded with a failed round); the run finished.
Prints what it counted; exits 0 when every invariant holds, 1 otherwise
(each violation on its own line), 2 when the folder has no events.jsonl.
)",
     {{}, 1, "run directory"},
     cmd_check},
    {"compare",
     {{"compare LABEL=DIR...", "plot test accuracy against round for several methods (SVG)"}},
     R"(usage: fedsp compare --out FIG.svg [--title TEXT] LABEL=DIR[,DIR...]...

Draws one figure of test accuracy against version (round) for several
methods, each given as a label and its run folders (one per seed), e.g.
  fedsp compare --out fig.svg FedSP=runs/fedsp-1,runs/fedsp-2 Zero-shot=runs/zs-1
Per method: the mean over its runs, a band from the lowest to the highest
run, and a dashed level for a method scored only before training (zero-shot).
Prints each method's final accuracy (mean +- sample sd, min, max). A folder
without a readable summary.json, or with no scored version, is named and
nothing is written.
)",
     {{{"--out"}, {"--title"}}, ~std::size_t{0}, "method"},
     cmd_compare},
    {"certs",
     {{"certs --out DIR", "make a development CA, node certificate and join token"}},
     R"(usage: fedsp certs --out DIR [--nodes NAME[,NAME...]]

Makes what a development federation across machines needs (docs/network.md):
a CA (DIR/ca.pem, DIR/ca.key), a random join token (DIR/token) and one node
certificate and key the CA signed (DIR/node.pem, DIR/node.key) that every
node may share; each side of a connection checks the other's against the
CA. With --nodes, also DIR/NAME/ for each node: its own certificate (CN
NAME) and key, ca.pem and the token, but not the CA's key: copy each
folder to its machine and pass it as --certs. A CA and token already in DIR
are kept, so nodes can be added later. Needs the openssl command.
)",
     {{{"--out"}, {"--nodes"}}},
     cmd_certs},
    {"serve",
     {{"serve <scenario>", "run the server side and wait for join nodes (TLS)"}},
     R"(usage: fedsp serve <scenario.yaml> --listen HOST:PORT --certs DIR [--out DIR] [--insecure] [--quiet]

Runs the scenario's server side (server, aggregator, evaluator, workers) in
wall-clock time and waits for join nodes to bring its clients
(fedsp join); starts once every client has joined, ends the run like
fedsp run and writes the same run directory. TLS with DIR's certificates;
a node must present DIR/token. --insecure: plain text, no certificates
(every node must say so too). See docs/network.md.
)",
     {{{"--listen"}, {"--certs"}, {"--out"}, {"--insecure", false},
       {"--quiet", false}}, 1, "scenario"},
     cmd_serve},
    {"join",
     {{"join --server H:P", "host a range of clients of a served run"}},
     R"(usage: fedsp join --server HOST:PORT --certs DIR --token-file FILE --clients RANGE [--out DIR] [--attempts N] [--reconnect-s S] [--insecure] [--quiet]

Hosts the clients RANGE (e.g. 0-3, or 5) of the run served at HOST:PORT:
connects (retrying with exponential backoff, N attempts, default 8),
presents the join token, receives the scenario, builds its clients' data
shards and runs them until the server ends the run (exit 0). If the server
goes away mid-run, it reconnects and rejoins, trying for S seconds (default
300: time for 'fedsp resume' on the server's side). Exit 1: the server could not
be reached (a plain-text node and a TLS server cannot talk); exit 3: the
server refused this node (wrong token, ids held by another node). Logs and
client events go to --out (default runs/join-RANGE).
)",
     {{{"--server"}, {"--certs"}, {"--token-file"}, {"--clients"}, {"--out"}, {"--attempts"},
       {"--reconnect-s"}, {"--insecure", false}, {"--quiet", false}}},
     cmd_join},
  };
}

} // namespace fedsp::cli
