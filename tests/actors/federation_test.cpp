// Three clients, two synchronous rounds, through every actor of a run.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include <unistd.h>

#include <gtest/gtest.h>

#include "actors/federation.hpp"
#include "runtime/codec.hpp"
#include "runtime/run_check.hpp"
#include "tests/actors/actor_test_util.hpp"

namespace fedsp {
namespace {

namespace fs = std::filesystem;

class federation_test : public ::testing::Test {
protected:
  // ctest runs each test in its own process, possibly in parallel.
  static inline fs::path dir = fs::temp_directory_path()
                               / ("fedsp_federation_test_" + std::to_string(::getpid()));
  static inline result<json> summary = error{errc::unknown, "not run"};

  // One run shared by the assertions below (it is the expensive part).
  static void SetUpTestSuite() {
    fs::remove_all(dir);
    scenario sc;
    sc.name = "three-by-two";
    sc.seed = 3;
    sc.model.layers = 2;
    sc.model.width = 32;
    sc.model.heads = 4;
    sc.model.context = 64;
    sc.model.prompt_length = 4;
    sc.model.init_std = 0.2;
    sc.data.train = 96;
    sc.data.test = 40;
    sc.data.public_examples = 32;
    sc.clients.count = 3;
    sc.federation.rounds = 2;
    sc.method.name = "fedsp";
    sc.method.distill_steps = 10;
    sc.method.distill_batch = 4;
    sc.method.distill_seq_len = 32;
    sc.method.server_steps = 5;
    sc.method.chunk_bytes = 16384; // several chunks per model
    sc.training.prompt_steps = 15;
    sc.training.prompt_lr = 0.3;
    sc.training.model_steps = 5;
    sc.training.model_lr = 1e-3;
    sc.training.batch_size = 8;
    run_options opts;
    opts.out_dir = (dir / "run").string();
    opts.dump_dir = (dir / "messages").string();
    opts.console = false;
    summary = run_federation(sc, opts);
  }

  static void TearDownTestSuite() { fs::remove_all(dir); }

  static std::vector<json> events() {
    return test::read_jsonl(dir / "run" / "events.jsonl");
  }

  static std::vector<json> of_type(const std::string& type) {
    std::vector<json> out;
    for (auto& e : events())
      if (e.find("type")->as_string() == type)
        out.push_back(e);
    return out;
  }

  static double num(const json& j, const char* key) {
    auto* v = j.find(key);
    EXPECT_TRUE(v != nullptr && v->is_number()) << key << " in " << j.dump();
    return v && v->is_number() ? v->as_number() : NAN;
  }
};

TEST_F(federation_test, run_completes_with_two_published_versions) {
  ASSERT_TRUE(summary.ok()) << summary.err().message();
  auto& s = summary.value();
  EXPECT_EQ(num(s, "final_version"), 2);
  EXPECT_EQ(num(s, "rounds"), 2);
  EXPECT_EQ(num(s, "updates_accepted"), 6);
  EXPECT_EQ(num(s, "updates_rejected"), 0);
  EXPECT_TRUE(fs::exists(dir / "run" / "summary.json"));
  auto on_disk = test::read_jsonl(dir / "run" / "summary.json");
  ASSERT_EQ(on_disk.size(), 1u);
  EXPECT_EQ(num(on_disk[0], "final_version"), 2);
}

TEST_F(federation_test, prompt_stage_loss_falls_within_and_across_rounds) {
  ASSERT_TRUE(summary.ok());
  auto& rounds = summary.value().find("per_round")->as_array();
  ASSERT_EQ(rounds.size(), 2u);
  for (auto& r : rounds)
    EXPECT_LT(num(r, "mean_loss_after"), num(r, "mean_loss_before")) << r.dump();
  // Round 2 starts from the averaged prompts of round 1: clients begin lower.
  EXPECT_LT(num(rounds[1], "mean_loss_before"), num(rounds[0], "mean_loss_before"));
}

TEST_F(federation_test, events_hold_the_expected_records) {
  ASSERT_TRUE(summary.ok());
  for (auto& e : events()) {
    ASSERT_TRUE(e.find("type") && e.find("type")->is_string()) << e.dump();
    EXPECT_TRUE(e.find("t") && e.find("t")->is_number()) << e.dump();
    EXPECT_TRUE(e.find("wall_ms") && e.find("wall_ms")->is_number()) << e.dump();
  }
  EXPECT_EQ(of_type("join").size(), 3u);
  EXPECT_EQ(of_type("task").size(), 6u);
  EXPECT_EQ(of_type("update").size(), 6u);
  EXPECT_EQ(of_type("publish").size(), 2u);
  EXPECT_EQ(of_type("eval").size(), 3u); // versions 0, 1, 2
  EXPECT_EQ(of_type("reject").size(), 0u);

  // Each aggregation folds exactly the updates accepted in its round.
  std::map<double, std::set<double>> updates_by_round;
  for (auto& u : of_type("update"))
    updates_by_round[num(u, "round")].insert(num(u, "task"));
  auto aggs = of_type("aggregate");
  ASSERT_EQ(aggs.size(), 2u);
  for (auto& a : aggs) {
    std::set<double> folded;
    for (auto& id : a.find("updates")->as_array())
      folded.insert(id.as_number());
    EXPECT_EQ(folded, updates_by_round[num(a, "round")]) << a.dump();
    EXPECT_EQ(folded.size(), 3u);
  }
}

TEST_F(federation_test, prompts_sent_in_round_two_are_the_new_version) {
  ASSERT_TRUE(summary.ok());
  std::map<std::uint32_t, std::vector<task_msg>> tasks; // by round
  for (auto& f : fs::directory_iterator(dir / "messages")) {
    if (f.path().filename().string().find("-task-") == std::string::npos)
      continue;
    std::ifstream in(f.path(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    auto env = decode_bytes(bytes.data(), bytes.size());
    ASSERT_TRUE(env.ok()) << f.path() << ": " << env.err().message();
    auto& t = std::get<task_msg>(env.value().body);
    tasks[t.round].push_back(t);
  }
  ASSERT_EQ(tasks[1].size(), 3u);
  ASSERT_EQ(tasks[2].size(), 3u);
  EXPECT_EQ(tasks[1][0].base_version, 0u);
  EXPECT_EQ(tasks[2][0].base_version, 1u);
  EXPECT_EQ(tasks[2][0].prompts.version, 1u);
  EXPECT_NE(tasks[1][0].prompts.tensors[0].data, tasks[2][0].prompts.tensors[0].data);
  // Every client of a round gets the same global prompts.
  EXPECT_EQ(tasks[2][0].prompts, tasks[2][2].prompts);
}

// Large null updates (shared segments, read in place by the aggregator)
// through every actor: each accepted update folded exactly once, FedAvg of
// unchanged prompts is the prompts, and a model without a test set says
// "not scored", never an evaluation error.
TEST(federation_large_updates, are_folded_once_and_not_scored) {
  auto sc = parse_scenario(R"(name: large-null
seed: 4
model:
  kind: null
  parameters: 200000
data:
  train: 24
  test: 10
  public: 10
clients:
  count: 24
method:
  name: fedprompt
training:
  prompt_steps: 1
  prompt_lr: 0.1
federation:
  rounds: 3
)",
                           "large-null.yaml");
  ASSERT_TRUE(sc) << sc.err().text;
  auto dir = fs::temp_directory_path() / ("fedsp_large_null_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  run_options opts;
  opts.out_dir = dir.string();
  opts.console = false;
  auto s = run_federation(sc.value(), opts);
  ASSERT_TRUE(s) << s.err().text;
  EXPECT_EQ(number_at(s.value(), {"updates_accepted"}), 72);
  EXPECT_EQ(number_at(s.value(), {"updates_aggregated"}), 72);
  auto rc = check_run(dir.string()); // every accepted update folded exactly once
  ASSERT_TRUE(rc) << rc.err().text;
  EXPECT_TRUE(rc.value().ok());
  EXPECT_EQ(rc.value().last_version, 3u);
  EXPECT_TRUE(std::isnan(number_at(s.value(), {"final", "global", "test_acc"})));
  std::ifstream log(dir / "fedsp.log");
  std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text.find("evaluation failed"), std::string::npos) << text;
  EXPECT_NE(text.find("version 0 (before training): not scored"), std::string::npos) << text;
  EXPECT_NE(text.find("round 3/3 | version 3 | t"), std::string::npos) << text;
  // Each client received each round's prompts: 200,000 floats, 800 KB a task.
  auto traffic = s.value().find("traffic");
  ASSERT_NE(traffic, nullptr);
  EXPECT_GT(number_at(*traffic, {"client-5", "bytes_received"}), 3 * 800000.0);
  fs::remove_all(dir);
}

} // namespace
} // namespace fedsp
