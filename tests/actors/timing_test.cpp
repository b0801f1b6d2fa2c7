// The federation on the virtual clock: reproducible event logs, stragglers
// against deadlines, asynchronous FedBuff / FedAsync, dropouts, and the
// run-directory outputs (metrics.csv, report.html).
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <algorithm>

#include <gtest/gtest.h>
#include <unistd.h>

#include "actors/federation.hpp"
#include "tests/actors/actor_test_util.hpp"

namespace fedsp {
namespace {

namespace fs = std::filesystem;

// A small synthetic federation where compute is nearly free and latency is
// everything: a fast client's task takes 10 s of virtual time (5 s each
// way), a slow client's (a third of them, 19 s each way) 38 s, and the
// model reaches them after 5 s and 19 s.
const std::string base = R"(
seed: 4
model:
  layers: 1
  width: 32
  heads: 4
  context: 48
  prompt_length: 4
  init_std: 0.2
data:
  train: 120
  test: 24
  public: 24
clients:
  count: 6
  latency_s: tiers(0.67=5, 0.33=19)
  bandwidth_mbps: 1000000
method:
  name: fedprompt
training:
  prompt_steps: 2
  batch_size: 4
eval:
  every: 100
compute:
  threads: 1
  reference_gflops: 1000000
)";

struct run_out {
  json summary;
  std::vector<json> events;
  fs::path dir;
};

/// `base` with the sections of `extra` laid over it, key by key (a
/// scenario may not repeat a key: YAML forbids it, and fedsp refuses it).
/// Both are flat: top-level `section:` lines and two-space `key: value`
/// lines, or top-level `key: value`.
std::string over_base(const std::string& extra) {
  using section = std::vector<std::pair<std::string, std::string>>; // key, line
  std::vector<std::pair<std::string, section>> doc;
  auto read = [&](const std::string& text) {
    std::istringstream in(text);
    std::string line;
    section* cur = nullptr;
    while (std::getline(in, line)) {
      if (line.empty())
        continue;
      auto key = line.substr(line.find_first_not_of(' '));
      key = key.substr(0, key.find(':'));
      if (line[0] != ' ') {
        auto it = std::find_if(doc.begin(), doc.end(), [&](auto& d) { return d.first == key; });
        if (it == doc.end()) {
          doc.push_back({key, {}});
          it = doc.end() - 1;
        }
        cur = &it->second;
        if (line.back() != ':') { // top-level key: value
          cur->assign(1, {"", line});
          cur = nullptr;
        }
        continue;
      }
      auto it = std::find_if(cur->begin(), cur->end(), [&](auto& kv) { return kv.first == key; });
      if (it == cur->end())
        cur->push_back({key, line});
      else
        it->second = line;
    }
  };
  read(base);
  read(extra);
  std::string out;
  for (auto& [name, lines] : doc) {
    if (lines.size() == 1 && lines[0].first.empty()) {
      out += lines[0].second + "\n";
      continue;
    }
    out += name + ":\n";
    for (auto& kv : lines)
      out += kv.second + "\n";
  }
  return out;
}

run_out run(const std::string& extra, const std::string& tag) {
  auto sc = parse_scenario(over_base(extra), "timing.yaml");
  EXPECT_TRUE(sc) << sc.err().text;
  run_options opts;
  auto dir = fs::temp_directory_path() / ("fedsp_timing_" + tag + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  opts.out_dir = dir.string();
  opts.console = false;
  auto s = run_federation(sc.value(), opts);
  EXPECT_TRUE(s) << (s ? "" : s.err().text);
  run_out out{s ? s.value() : json{}, test::read_jsonl(dir / "events.jsonl"), dir};
  return out;
}

double num(const json& j, const char* key) {
  auto* v = j.find(key);
  return v != nullptr && v->is_number() ? v->as_number() : NAN;
}

std::vector<json> of_type(const std::vector<json>& events, const std::string& type) {
  std::vector<json> out;
  for (auto& e : events)
    if (e.find("type")->as_string() == type)
      out.push_back(e);
  return out;
}

/// The events without their wall-clock fields (wall_*), one string each.
std::vector<std::string> without_wall(const std::vector<json>& events) {
  std::vector<std::string> out;
  for (auto& e : events) {
    json c = json::object{};
    for (auto& [k, v] : e.as_object())
      if (k.rfind("wall_", 0) != 0)
        c.set(k, v);
    out.push_back(c.dump());
  }
  return out;
}

// Round 1 closes at its deadline (30 s) without the slow clients; rounds
// 2-4 run with the fast ones while the slow ones are still busy; their late
// updates arrive at 57 s; round 5 (from 60 s) selects everybody and misses
// them again at its deadline (90 s).
const std::string sync_deadline = R"(
federation:
  rounds: 5
  round_deadline_s: 30
  quorum: 1
)";

TEST(virtual_clock, same_seed_gives_the_same_events_whatever_the_worker_count) {
  auto a = run(sync_deadline, "a");
  auto b = run(sync_deadline, "b");
  // Three workers instead of one (torch still on one thread each: other
  // thread counts may round differently in the last bits).
  auto c = run(sync_deadline + "compute:\n  workers: 3\n", "c");
  ASSERT_FALSE(a.events.empty());
  EXPECT_EQ(without_wall(a.events), without_wall(b.events));
  EXPECT_EQ(without_wall(a.events), without_wall(c.events));
  // Never out of order.
  for (std::size_t i = 1; i < a.events.size(); ++i)
    EXPECT_LE(num(a.events[i - 1], "t"), num(a.events[i], "t"));
  for (auto* r : {&a, &b, &c})
    fs::remove_all(r->dir);
}

TEST(virtual_clock, stragglers_miss_the_deadline_and_their_updates_are_dropped) {
  auto r = run(sync_deadline, "sync");
  EXPECT_EQ(num(r.summary, "final_version"), 5);
  auto deadlines = of_type(r.events, "deadline");
  ASSERT_EQ(deadlines.size(), 2u);
  EXPECT_NEAR(num(deadlines[0], "t"), 30, 1e-9);
  EXPECT_EQ(of_type(r.events, "task_late").size(), 4u); // two slow clients, twice
  EXPECT_EQ(num(r.summary, "updates_aggregated"), 4 * 5); // the four fast clients
  // Round 1's late updates arrive at 57 s, after their round closed,
  // and are refused; round 5's are still out when the run ends.
  EXPECT_EQ(num(r.summary, "updates_late"), 2);
  EXPECT_EQ(num(r.summary, "tasks_pending"), 2);
  int closed = 0;
  for (auto& e : of_type(r.events, "reject"))
    closed += e.find("reason")->as_string() == "task_closed";
  EXPECT_EQ(closed, 2);
  // ... and counted by reason in summary.json.
  EXPECT_EQ(num(*r.summary.find("rejects"), "task_closed"), 2);
  // metrics.csv has a row for version 0 and one per round; report.html plots.
  std::ifstream csv(r.dir / "metrics.csv");
  std::string line;
  int rows = 0;
  while (std::getline(csv, line))
    ++rows;
  EXPECT_EQ(rows, 1 + 1 + 5);
  std::ifstream html(r.dir / "report.html");
  std::stringstream ss;
  ss << html.rdbuf();
  EXPECT_NE(ss.str().find("<svg"), std::string::npos);
  EXPECT_NE(ss.str().find("late"), std::string::npos);
  fs::remove_all(r.dir);
}

TEST(virtual_clock, late_updates_can_be_folded_into_the_next_round_as_stale) {
  auto r = run(sync_deadline + "  late_updates: stale\n", "stale");
  EXPECT_EQ(num(r.summary, "final_version"), 5);
  EXPECT_GE(num(r.summary, "updates_stale"), 1);
  bool folded_stale = false;
  for (auto& a : of_type(r.events, "aggregate"))
    for (auto& s : a.find("staleness")->as_array())
      folded_stale = folded_stale || s.as_number() > 0;
  EXPECT_TRUE(folded_stale);
  // Every accepted update is aggregated once or reported pending.
  EXPECT_EQ(num(r.summary, "updates_accepted"),
            num(r.summary, "updates_aggregated") + num(r.summary, "updates_pending")
              + num(r.summary, "updates_discarded"));
  fs::remove_all(r.dir);
}

TEST(virtual_clock, over_selection_closes_the_round_at_the_first_n) {
  auto r = run("federation:\n  rounds: 3\n  clients_per_round: 3\n  over_selection: 2\n", "over");
  auto rounds = of_type(r.events, "round");
  ASSERT_EQ(rounds.size(), 3u);
  EXPECT_EQ(num(rounds[0], "selected"), 6); // 3 x 2, of which the first 3 count
  EXPECT_TRUE(of_type(r.events, "deadline").empty()); // closed early, by the target
  for (auto& a : of_type(r.events, "aggregate"))
    EXPECT_EQ(a.find("updates")->as_array().size(), 3u);
  fs::remove_all(r.dir);
}

TEST(virtual_clock, fedbuff_aggregates_every_k_updates_and_weights_staleness) {
  auto r = run("federation:\n  mode: async\n  versions: 5\n  concurrency: 4\n  buffer_size: 2\n",
               "fedbuff");
  EXPECT_EQ(num(r.summary, "final_version"), 5);
  auto aggs = of_type(r.events, "aggregate");
  ASSERT_EQ(aggs.size(), 5u);
  for (auto& a : aggs)
    EXPECT_EQ(a.find("updates")->as_array().size(), 2u);
  std::set<double> ids;
  for (auto& a : aggs)
    for (auto& id : a.find("updates")->as_array())
      EXPECT_TRUE(ids.insert(id.as_number()).second) << "update folded twice";
  EXPECT_EQ(num(r.summary, "updates_accepted"),
            num(r.summary, "updates_aggregated") + num(r.summary, "updates_pending"));
  // Fast clients keep coming back while the slow ones are out: versions
  // move on without waiting for them (sync rounds that waited for everybody
  // would take 40 s each).
  EXPECT_LT(num(r.summary, "t_end"), 5 * 40.0);
  fs::remove_all(r.dir);
}

TEST(virtual_clock, async_clients_keep_learning_beyond_the_rounds_count) {
  // 12 versions of 2 updates over 6 clients: each client trains about 4
  // tasks, the fast ones more. The learning-rate schedules must span those
  // tasks (not the `rounds` count, here 1), or later tasks would train at
  // rate 0 and return their prompts unchanged.
  auto r = run("federation:\n  mode: async\n  rounds: 1\n  versions: 12\n  concurrency: 4\n"
               "  buffer_size: 2\n",
               "async-schedule");
  EXPECT_EQ(num(r.summary, "final_version"), 12);
  auto updates = of_type(r.events, "update");
  ASSERT_GE(updates.size(), 20u);
  int moved = 0, late = 0;
  for (std::size_t i = updates.size() / 2; i < updates.size(); ++i, ++late)
    moved += num(updates[i], "loss_after") != num(updates[i], "loss_before");
  EXPECT_EQ(moved, late) << "updates of the second half that changed nothing";
  fs::remove_all(r.dir);
}

TEST(virtual_clock, fedasync_publishes_a_version_per_update_and_bounds_staleness) {
  auto r = run("federation:\n  mode: async\n  aggregator: fedasync\n  versions: 24\n"
               "  concurrency: 6\n  max_staleness: 2\n",
               "fedasync");
  EXPECT_EQ(num(r.summary, "final_version"), 24);
  for (auto& a : of_type(r.events, "aggregate"))
    EXPECT_EQ(a.find("updates")->as_array().size(), 1u);
  // The slow clients' first updates arrive at 57 s, when the fast ones
  // have published far more than 2 versions: refused, naming the bound.
  bool bound = false;
  for (auto& e : of_type(r.events, "reject"))
    bound = bound || e.find("text")->as_string().find("the bound is 2") != std::string::npos;
  EXPECT_TRUE(bound);
  fs::remove_all(r.dir);
}

TEST(virtual_clock, dropouts_are_events_and_the_run_completes) {
  auto r = run("clients:\n  count: 6\n  dropout: 0.5\nfederation:\n  rounds: 3\n"
               "  round_deadline_s: 500\n  quorum: 1\n",
               "dropout");
  EXPECT_GE(of_type(r.events, "dropout").size(), 1u);
  EXPECT_EQ(num(r.summary, "dropouts"), of_type(r.events, "dropout").size());
  EXPECT_GE(num(r.summary, "final_version"), 1);
  // Updates of clients that left arrive at wall-clock moments; the log
  // must not depend on them.
  auto again = run("clients:\n  count: 6\n  dropout: 0.5\nfederation:\n  rounds: 3\n"
                   "  round_deadline_s: 500\n  quorum: 1\n",
                   "dropout2");
  EXPECT_EQ(without_wall(r.events), without_wall(again.events));
  fs::remove_all(r.dir);
  fs::remove_all(again.dir);
}

TEST(real_clock, a_run_on_the_wall_clock_completes_with_wall_times) {
  // Latency is not modelled on the real clock: results count when they come.
  auto r = run("federation:\n  clock: real\n  rounds: 2\n  round_deadline_s: 60\n", "real");
  EXPECT_EQ(num(r.summary, "final_version"), 2);
  EXPECT_EQ(r.summary.find("clock")->as_string(), "real");
  EXPECT_TRUE(of_type(r.events, "deadline").empty());
  EXPECT_TRUE(of_type(r.events, "model_sent").empty()); // clients log model_received
  EXPECT_EQ(of_type(r.events, "model_received").size(), 6u);
  // t is wall seconds since the start: within the run's wall time.
  for (auto& e : r.events)
    EXPECT_LE(num(e, "t"), num(r.summary, "wall_seconds") + 1.0);
  fs::remove_all(r.dir);
}

TEST(real_clock, async_runs_retry_when_no_client_is_online) {
  // Each dispatch finds a client online with probability 0.2: often none
  // is, and the server must look again rather than wait forever.
  auto r = run("clients:\n  count: 6\n  availability: probability(0.2)\nfederation:\n"
               "  clock: real\n  mode: async\n  versions: 3\n  concurrency: 2\n"
               "  buffer_size: 2\n",
               "real-async");
  EXPECT_EQ(num(r.summary, "final_version"), 3);
  fs::remove_all(r.dir);
}

} // namespace
} // namespace fedsp
