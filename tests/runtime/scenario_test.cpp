// Scenario files: defaults, and errors that name the file, the line and the key.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include <gtest/gtest.h>

#include "runtime/faults.hpp"
#include "runtime/scenario.hpp"
#include "runtime/strategy.hpp"

namespace fedsp {
namespace {

std::string error_of(const std::string& text, const std::string& path = "s.yaml") {
  auto r = parse_scenario(text, path);
  EXPECT_FALSE(r.ok()) << "expected an error for:\n" << text;
  return r.ok() ? "" : r.err().text;
}

TEST(scenario, values_are_read_and_the_rest_defaults) {
  auto r = parse_scenario("seed: 5\nclients:\n  count: 3\nfederation:\n  rounds: 2\n",
                          "dir/two-rounds.yaml");
  ASSERT_TRUE(r.ok()) << r.err().text;
  auto& sc = r.value();
  EXPECT_EQ(sc.name, "two-rounds");
  EXPECT_EQ(sc.seed, 5u);
  EXPECT_EQ(sc.clients.count, 3u);
  EXPECT_EQ(sc.federation.rounds, 2u);
  EXPECT_EQ(sc.model.layers, model_params{}.layers);
  EXPECT_EQ(sc.training.prompt_lr, training_params{}.prompt_lr);
}

TEST(scenario, unknown_key_names_file_line_and_dotted_key) {
  auto e = error_of("seed: 1\nfederation:\n  rounds: 2\n  roundz: 3\n");
  EXPECT_NE(e.find("s.yaml:4"), std::string::npos) << e;
  EXPECT_NE(e.find("unknown key 'federation.roundz'"), std::string::npos) << e;
  EXPECT_NE(e.find("rounds"), std::string::npos) << e; // lists the known keys
}

TEST(fault_kinds, the_table_names_every_kind_once_and_the_reader_takes_each_name) {
  std::set<std::string> names;
  for (auto& row : fault_kinds) {
    EXPECT_TRUE(names.insert(row.name).second) << row.name;
    EXPECT_EQ(fault_kind_named(row.name), row.kind);
    EXPECT_STREQ(to_string(row.kind), row.name);
    EXPECT_FALSE(row.crash && row.window) << row.name << ": a crash fires once, it has no window";
    EXPECT_TRUE(!row.message || row.needs_link) << row.name << ": message faults act on links";
  }
  EXPECT_FALSE(fault_kind_named("meteor_strike"));
  // Every name the table holds is one a scenario may write.
  for (auto& row : fault_kinds) {
    std::string extra = row.window ? "    duration_s: 1\n" : "";
    extra += std::string(row.name) == "client_crash" ? "    clients: [0]\n" : "";
    auto r = parse_scenario("clients:\n  count: 2\ncompute:\n  workers: 2\nfaults:\n  - kind: "
                              + std::string(row.name)
                              + "\n" + extra,
                            "s.yaml");
    EXPECT_TRUE(r.ok()) << row.name << ": " << (r.ok() ? "" : r.err().text);
  }
}

TEST(strategies, each_mode_has_one_default_and_each_strategy_fits_only_its_mode) {
  std::set<std::string> names;
  int sync_defaults = 0, async_defaults = 0;
  for (auto& row : strategies) {
    EXPECT_TRUE(names.insert(row.name).second) << row.name;
    EXPECT_EQ(&strategy_named(row.name), &row);
    (row.async ? async_defaults : sync_defaults) += row.default_for_mode;
    EXPECT_TRUE(!row.folds_each_update || row.async) << row.name;
    std::string mode = row.async ? "async" : "sync", other = row.async ? "sync" : "async";
    auto ok = parse_scenario("federation:\n  mode: " + mode + "\n  aggregator: " + row.name + "\n",
                             "s.yaml");
    EXPECT_TRUE(ok.ok()) << row.name << ": " << (ok.ok() ? "" : ok.err().text);
    auto bad = parse_scenario("federation:\n  mode: " + other + "\n  aggregator: " + row.name + "\n",
                              "s.yaml");
    ASSERT_FALSE(bad.ok()) << row.name << " accepted in mode " << other;
    EXPECT_NE(bad.err().text.find("does not fit mode " + other), std::string::npos) << bad.err().text;
  }
  EXPECT_EQ(sync_defaults, 1);
  EXPECT_EQ(async_defaults, 1);
  EXPECT_EQ(parse_scenario("federation:\n  mode: async\n", "s.yaml").value().federation.aggregator,
            "fedbuff");
  EXPECT_EQ(parse_scenario("seed: 1\n", "s.yaml").value().federation.aggregator, "fedavg");
}

TEST(scenario, a_key_given_twice_is_refused_naming_both_lines) {
  EXPECT_EQ(error_of("seed: 1\nseed: 2\n"), "s.yaml:2: key 'seed' appears twice (lines 1 and 2)");
  EXPECT_NE(error_of("federation:\n  rounds: 1\n  mode: sync\n  rounds: 2\n")
              .find("key 'rounds' appears twice (lines 2 and 4)"),
            std::string::npos);
}

TEST(scenario, a_huge_value_is_not_echoed_whole) {
  auto big = std::string(1'000'000, 'z');
  auto err = error_of("federation:\n  mode: " + big + "\n");
  EXPECT_LT(err.size(), 1000u) << err.substr(0, 200);
  EXPECT_NE(err.find("(1000000 bytes)"), std::string::npos) << err.substr(0, 300);
}

TEST(scenario, unknown_top_level_section_is_an_error) {
  auto e = error_of("sede: 1\n");
  EXPECT_NE(e.find("s.yaml:1"), std::string::npos) << e;
  EXPECT_NE(e.find("'sede'"), std::string::npos) << e;
}

TEST(scenario, wrong_type_names_the_key_and_the_value) {
  auto e = error_of("federation:\n  rounds: three\n");
  EXPECT_NE(e.find("s.yaml:2"), std::string::npos) << e;
  EXPECT_NE(e.find("'federation.rounds'"), std::string::npos) << e;
  EXPECT_NE(e.find("three"), std::string::npos) << e;
  e = error_of("training:\n  prompt_lr: [1, 2]\n");
  EXPECT_NE(e.find("'training.prompt_lr'"), std::string::npos) << e;
  e = error_of("model: 4\n");
  EXPECT_NE(e.find("'model' must be a map"), std::string::npos) << e;
}

TEST(scenario, out_of_range_values_are_refused) {
  EXPECT_NE(error_of("clients:\n  count: 0\n").find("'clients.count'"), std::string::npos);
  EXPECT_NE(error_of("training:\n  prompt_lr: -1\n").find("prompt_lr"),
            std::string::npos);
  EXPECT_NE(error_of("federation:\n  rounds: -2\n").find("federation.rounds"),
            std::string::npos);
  EXPECT_NE(error_of("model:\n  width: 30\n  heads: 4\n").find("must divide"),
            std::string::npos);
  EXPECT_NE(error_of("clients:\n  count: 2\nfederation:\n  clients_per_round: 3\n")
              .find("exceeds clients.count"),
            std::string::npos);
  EXPECT_NE(error_of("federation:\n  max_update_ratio: -1\n").find("federation.max_update_ratio"),
            std::string::npos);
  EXPECT_NE(error_of("federation:\n  max_update_ratio: nan\n").find("federation.max_update_ratio"),
            std::string::npos);
  EXPECT_NE(error_of("federation:\n  max_refused_in_a_row: 2.5\n")
              .find("federation.max_refused_in_a_row"),
            std::string::npos);
}

TEST(scenario, the_outlier_bound_and_the_stop_have_defaults_and_can_be_turned_off) {
  auto d = parse_scenario("federation:\n  rounds: 1\n", "s.yaml");
  ASSERT_TRUE(d) << d.err().text;
  EXPECT_EQ(d.value().federation.max_update_ratio, 1000); // docs/scenarios.md
  EXPECT_EQ(d.value().federation.max_refused_in_a_row, 200u);
  auto off = parse_scenario("federation:\n  max_update_ratio: 0\n  max_refused_in_a_row: 0\n",
                            "s.yaml");
  ASSERT_TRUE(off) << off.err().text;
  EXPECT_EQ(off.value().federation.max_update_ratio, 0);
  EXPECT_EQ(off.value().federation.max_refused_in_a_row, 0u);
}

TEST(scenario, prefetch_is_on_by_default_and_takes_only_a_boolean) {
  auto d = parse_scenario("compute:\n  device_memory_gb: 4\n", "s.yaml");
  ASSERT_TRUE(d) << d.err().text;
  EXPECT_TRUE(d.value().compute.prefetch); // docs/scenarios.md
  auto off = parse_scenario("compute:\n  prefetch: false\n", "s.yaml");
  ASSERT_TRUE(off) << off.err().text;
  EXPECT_FALSE(off.value().compute.prefetch);
  EXPECT_NE(error_of("compute:\n  prefetch: sometimes\n").find("compute.prefetch"),
            std::string::npos);
}

TEST(scenario, async_mode_takes_an_async_aggregator_and_an_aggregating_method) {
  auto ok = parse_scenario("federation:\n  mode: async\n  staleness: hinge(10, 2)\n", "s.yaml");
  ASSERT_TRUE(ok) << ok.err().text;
  EXPECT_EQ(ok.value().federation.aggregator, "fedbuff"); // the async default
  EXPECT_EQ(ok.value().federation.staleness.to_string(), "hinge(10, 2)");
  auto e = error_of("federation:\n  mode: async\n  aggregator: fedavg\n");
  EXPECT_NE(e.find("s.yaml:3: key 'federation.aggregator'"), std::string::npos) << e;
  e = error_of("method:\n  name: local\nfederation:\n  mode: async\n");
  EXPECT_NE(e.find("async needs an aggregating method"), std::string::npos) << e;
  EXPECT_NE(error_of("federation:\n  mode: turbo\n").find("one of sync, async"),
            std::string::npos);
  e = error_of("federation:\n  mode: async\n  staleness: polynomial(-1)\n");
  EXPECT_NE(e.find("s.yaml:3: key 'federation.staleness'"), std::string::npos) << e;
}

TEST(scenario, heterogeneity_keys_are_parsed_and_checked) {
  auto ok = parse_scenario("clients:\n  count: 10\n  speed: tiers(0.7=1, 0.3=0.1)\n"
                           "  latency_s: uniform(0.01, 0.2)\n  bandwidth_mbps: lognormal(3, 0.5)\n"
                           "  availability: probability(0.8)\n  dropout: 0.1\n",
                           "s.yaml");
  ASSERT_TRUE(ok) << ok.err().text;
  auto& c = ok.value().clients;
  auto speeds = c.speed_dist.sample(10, 1);
  EXPECT_EQ(std::count(speeds.begin(), speeds.end(), 0.1), 3); // exactly 30%
  EXPECT_EQ(c.online.k, availability::kind::probability);
  auto e = error_of("clients:\n  count: 2\n  speed: fast\n");
  EXPECT_NE(e.find("s.yaml:3: key 'clients.speed'"), std::string::npos) << e;
  EXPECT_NE(e.find("lognormal(mu, sigma)"), std::string::npos) << e;
  e = error_of("clients:\n  speed: tiers(0.5=1, 0.4=2)\n");
  EXPECT_NE(e.find("sum to 1"), std::string::npos) << e;
  e = error_of("clients:\n  latency_s: -1\n");
  EXPECT_NE(e.find("out of range"), std::string::npos) << e;
  e = error_of("clients:\n  availability: sometimes\n");
  EXPECT_NE(e.find("key 'clients.availability'"), std::string::npos) << e;
  e = error_of("clients:\n  speed: trace(/nonexistent/speeds.txt)\n");
  EXPECT_NE(e.find("/nonexistent/speeds.txt"), std::string::npos) << e;
}

TEST(scenario, missing_scenario_file_is_named) {
  auto r = load_scenario("/nonexistent/where.yaml");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.err().text.find("/nonexistent/where.yaml"), std::string::npos);
}

TEST(scenario, missing_data_file_names_the_key_and_the_file) {
  auto dir = std::filesystem::temp_directory_path() / "fedsp_scenario_test";
  std::filesystem::create_directories(dir / "data");
  std::ofstream(dir / "data" / "train.jsonl") << "{}\n"; // test.jsonl missing
  auto e = error_of("data:\n  kind: jsonl\n  dir: data\n", (dir / "s.yaml").string());
  EXPECT_NE(e.find("'data.dir'"), std::string::npos) << e;
  EXPECT_NE(e.find("test.jsonl"), std::string::npos) << e;
  EXPECT_NE(e.find(":3:"), std::string::npos) << e;
  std::filesystem::remove_all(dir);
}

TEST(scenario, yaml_syntax_error_and_empty_file_are_reported) {
  EXPECT_NE(error_of("model: [1, 2\n").find("YAML syntax error"), std::string::npos);
  EXPECT_NE(error_of("").find("empty"), std::string::npos);
  EXPECT_NE(error_of("- 1\n- 2\n").find("map"), std::string::npos);
}

TEST(scenario, loaded_scenarios_keep_their_text_and_settings_for_resume_and_join) {
  auto dir = std::filesystem::temp_directory_path() / "fedsp_scenario_source_test";
  std::filesystem::create_directories(dir);
  auto path = (dir / "s.yaml").string();
  std::string text = "seed: 4\nclients:\n  count: 3\nfederation:\n  rounds: 2\n";
  std::ofstream(path) << text;
  // Resume and join nodes re-read `source`: it is the file as written.
  auto plain = load_scenario(path);
  ASSERT_TRUE(plain.ok()) << plain.err().text;
  EXPECT_EQ(plain.value().source, text);
  // With --set, `source` holds the changed scenario, and reads back the same.
  auto set = load_scenario(path, {"federation.rounds=7", "clients.count=5"});
  ASSERT_TRUE(set.ok()) << set.err().text;
  EXPECT_EQ(set.value().federation.rounds, 7u);
  EXPECT_EQ(set.value().clients.count, 5u);
  EXPECT_EQ(set.value().source.rfind("# with --set federation.rounds=7 clients.count=5\n", 0), 0u);
  auto again = parse_scenario(set.value().source, path);
  ASSERT_TRUE(again.ok()) << again.err().text;
  EXPECT_EQ(again.value().federation.rounds, 7u);
  EXPECT_EQ(again.value().clients.count, 5u);
  EXPECT_EQ(again.value().seed, 4u);
  // An error in a setting names the setting, not a line of the file.
  auto bad = load_scenario(path, {"federation.rounds=many"});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.err().text.find("s.yaml, --set 'federation.rounds=many': key 'federation.rounds'"),
            std::string::npos) << bad.err().text;
  std::filesystem::remove_all(dir);
}

TEST(scenario, shipped_scenarios_parse) {
  for (auto& entry : std::filesystem::directory_iterator(FEDSP_SOURCE_DIR "/scenarios")) {
    if (entry.path().extension() != ".yaml")
      continue;
    auto r = load_scenario(entry.path().string());
    EXPECT_TRUE(r.ok()) << entry.path() << ": " << (r.ok() ? "" : r.err().text);
  }
}

} // namespace
} // namespace fedsp

namespace fedsp {
namespace {

TEST(scenario, a_fault_plan_is_read_with_its_triggers_and_targets) {
  auto r = parse_scenario(R"(clients:
  count: 10
compute:
  workers: 3
faults:
  - kind: message_drop
    probability: 0.1
    direction: up
  - kind: partition
    clients: [0-2, 7]
    at_s: 5
    duration_s: 10
  - kind: aggregator_crash
    at_version: 4
  - kind: worker_crash
    worker: 2
  - kind: server_crash
    at_s: 30
    restart_after_s: 2
)",
                          "f.yaml");
  ASSERT_TRUE(r.ok()) << r.err().text;
  auto& p = r.value().faults;
  ASSERT_EQ(p.faults.size(), 5u);
  EXPECT_EQ(p.faults[0].kind, fault_kind::message_drop);
  EXPECT_TRUE(p.faults[0].covers_direction(true));
  EXPECT_FALSE(p.faults[0].covers_direction(false));
  EXPECT_TRUE(p.faults[0].covers(9)); // no clients: all
  EXPECT_EQ(p.faults[1].clients, (std::set<std::uint32_t>{0, 1, 2, 7}));
  EXPECT_TRUE(p.faults[1].active_at(5));
  EXPECT_TRUE(p.faults[1].active_at(14.9));
  EXPECT_FALSE(p.faults[1].active_at(15));
  EXPECT_EQ(*p.faults[2].at_version, 4u);
  EXPECT_EQ(p.faults[3].worker, 2u);
  EXPECT_EQ(p.faults[4].restart_after_s, 2);
  EXPECT_TRUE(p.needs_links());
  // What fedsp serve can inject (the clients are in other processes).
  EXPECT_TRUE(p.faults[0].is_client_side());
  EXPECT_TRUE(p.faults[1].is_client_side());
  EXPECT_FALSE(p.faults[2].is_client_side());
  EXPECT_FALSE(p.faults[3].is_client_side());
  EXPECT_FALSE(p.faults[4].is_client_side());
}

TEST(scenario, a_broken_fault_plan_names_the_entry_and_what_is_wrong) {
  auto err = [](const std::string& faults, const std::string& extra = "") {
    auto r = parse_scenario("clients:\n  count: 4\n" + extra + "faults:\n" + faults, "f.yaml");
    return r.ok() ? std::string("accepted") : r.err().text;
  };
  EXPECT_NE(err("  - kind: meteor_strike\n").find("faults[0].kind' must be one of message_drop"),
            std::string::npos);
  EXPECT_NE(err("  - probability: 0.1\n").find("faults[0] needs a 'kind'"), std::string::npos);
  EXPECT_NE(err("  - kind: partition\n    at_s: 3\n").find("needs duration_s"), std::string::npos);
  EXPECT_NE(err("  - kind: partition\n    clients: 9\n    duration_s: 3\n")
              .find("names client 9, but there are 4"),
            std::string::npos);
  EXPECT_NE(err("  - kind: partition\n    clients: 3-1\n    duration_s: 3\n").find("'3-1'"),
            std::string::npos);
  EXPECT_NE(err("  - kind: client_crash\n    at_version: 2\n").find("needs 'clients'"),
            std::string::npos);
  EXPECT_NE(err("  - kind: aggregator_crash\n    probability: 0.5\n").find("fires once"),
            std::string::npos);
  EXPECT_NE(err("  - kind: worker_crash\n").find("at least 2 workers"), std::string::npos);
  EXPECT_NE(err("  - kind: worker_crash\n    worker: 0\n", "compute:\n  workers: 2\n")
              .find("worker 0 is not a client worker"),
            std::string::npos);
  EXPECT_NE(err("  - kind: server_crash\n", "durability:\n  checkpoints: false\n")
              .find("needs durability.checkpoints: true"),
            std::string::npos);
  EXPECT_NE(err("  - kind: message_delay\n    delay_s: 15\n").find("at most half of federation.silence_s"),
            std::string::npos);
  EXPECT_NE(err("  kind: message_drop\n").find("'faults' must be a list"), std::string::npos);
  EXPECT_NE(err("  - kind: partition\n    duration_s: 3\n    probability: 0.5\n")
              .find("does not apply"),
            std::string::npos);
  EXPECT_NE(err("  - kind: message_drop\n    probability: 2\n").find("faults[0].probability"),
            std::string::npos);
  // The line of the entry is named.
  EXPECT_NE(err("  - kind: message_drop\n  - kind: partition\n").find("f.yaml:5"),
            std::string::npos);
}

TEST(faults, decisions_follow_the_seed_and_the_probability) {
  fault_spec f;
  f.probability = 0.2;
  int fired = 0;
  for (std::uint64_t id = 0; id < 20000; ++id) {
    auto key = message_key(3, true, 2, id);
    bool a = fault_fires(f, 42, key);
    EXPECT_EQ(a, fault_fires(f, 42, key)); // the same message, the same decision
    fired += a;
  }
  EXPECT_NEAR(fired / 20000.0, 0.2, 0.015);
  // Another seed or another fault of the plan draws differently.
  fault_spec g = f;
  g.index = 1;
  int same = 0;
  for (std::uint64_t id = 0; id < 2000; ++id) {
    auto key = message_key(3, true, 2, id);
    same += fault_fires(f, 42, key) == fault_fires(g, 42, key);
  }
  EXPECT_LT(same, 1900);
  f.probability = 0;
  EXPECT_FALSE(fault_fires(f, 1, 1));
}

TEST(faults, dropout_and_burst_windows_shape_the_clients) {
  fault_plan p;
  fault_spec d;
  d.kind = fault_kind::client_dropout;
  d.clients = {2};
  d.at_s = 10;
  d.until_s = 20;
  fault_spec b;
  b.kind = fault_kind::straggler_burst;
  b.at_s = 0;
  b.until_s = 5;
  b.factor = 3;
  p.faults = {d, b};
  EXPECT_TRUE(p.away(2, 10));
  EXPECT_FALSE(p.away(2, 20));
  EXPECT_FALSE(p.away(1, 15));
  EXPECT_EQ(p.leaves_between(2, 8, 12), 10);
  EXPECT_TRUE(std::isinf(p.leaves_between(2, 11, 12)));
  EXPECT_EQ(p.slowdown(7, 1), 3);
  EXPECT_EQ(p.slowdown(7, 5), 1);
  // With a probability, a fault takes part in that share of the tasks.
  p.faults[1].probability = 0.25;
  p.faults[0].probability = 0.5;
  p.faults[0].at_s = 0;
  int slow = 0, left = 0;
  for (std::uint64_t task = 1; task <= 4000; ++task) {
    slow += p.slowdown(2, 1, 9, task) > 1;
    left += !std::isinf(p.leaves_between(2, 1, 3, 9, task)); // starts inside the window
  }
  EXPECT_NEAR(slow / 4000.0, 0.25, 0.03);
  EXPECT_NEAR(left / 4000.0, 0.5, 0.03);
  EXPECT_FALSE(p.away(2, 1)); // a per-task dropout keeps the client selectable
  EXPECT_EQ(p.leaves_between(2, 1, 3, 9, 7) == 2 || std::isinf(p.leaves_between(2, 1, 3, 9, 7)),
            true); // half-way through the task
}

} // namespace
} // namespace fedsp
