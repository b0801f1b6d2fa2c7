// Every method through the same actors, on a small synthetic task: each does
// what docs/methods.md says it does (what travels, who trains what).
#include <cmath>
#include <filesystem>
#include <map>

#include <gtest/gtest.h>
#include <unistd.h>

#include "actors/federation.hpp"
#include "tests/actors/actor_test_util.hpp"

namespace fedsp {
namespace {

namespace fs = std::filesystem;

struct method_run {
  json summary;
  std::map<std::string, int> events; // count per type
  std::vector<json> all;
};

method_run run_method(const std::string& method, std::uint32_t server_examples = 0,
                      const std::string& family = "", const std::string& aux_method = "share") {
  auto dir = fs::temp_directory_path()
             / ("fedsp_methods_" + method + family + aux_method + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  scenario sc;
  sc.name = method;
  sc.seed = 5;
  sc.model.family = family;
  sc.model.kv_heads = family == "llama" ? 1 : 0; // grouped-query: 2 heads share 1
  sc.model.layers = 2;
  sc.model.width = 16;
  sc.model.heads = 2;
  sc.model.context = 48;
  sc.model.prompt_length = 2;
  sc.model.init_std = 0.2;
  sc.data.train = 24;
  sc.data.test = 8;
  sc.data.public_examples = 8;
  sc.clients.count = 3;
  sc.federation.rounds = method == "zeroshot" ? 0 : 2;
  sc.method.name = method;
  sc.method.aux_method = aux_method;
  sc.method.distill_steps = 2;
  sc.method.distill_batch = 2;
  sc.method.distill_seq_len = 16;
  sc.method.server_steps = 2;
  sc.method.server_examples = server_examples;
  sc.method.chunk_bytes = 8192;
  sc.training.prompt_steps = 2;
  sc.training.model_steps = 2;
  sc.training.batch_size = 4;
  run_options opts;
  opts.out_dir = (dir / "run").string();
  opts.console = false;
  auto s = run_federation(sc, opts);
  method_run out;
  EXPECT_TRUE(s.ok()) << method << ": " << (s.ok() ? "" : s.err().message());
  if (!s.ok())
    return out;
  out.summary = s.value();
  out.all = test::read_jsonl(dir / "run" / "events.jsonl");
  for (auto& e : out.all)
    ++out.events[e.find("type")->as_string()];
  fs::remove_all(dir);
  return out;
}

TEST(methods, fedsp_ships_the_auxiliary_model_once_and_tunes_on_the_server) {
  auto r = run_method("fedsp");
  EXPECT_EQ(r.events["model_sent"], 3);
  EXPECT_EQ(r.events["distill"], 1);
  EXPECT_EQ(r.events["server_step"], 2);
  EXPECT_EQ(number_at(r.summary, {"final_version"}), 2);
  // The auxiliary model (one shared block) is smaller than the global one.
  EXPECT_LT(number_at(r.summary, {"parameters", "auxiliary"}), number_at(r.summary, {"parameters", "global"}));
  EXPECT_FALSE(std::isnan(number_at(r.summary, {"final", "aux", "test_acc"})));
  // Per client: the model once (in several chunks), then only prompts, far smaller.
  for (auto& [name, t] : r.summary.find("traffic")->as_object()) {
    EXPECT_GT(number_at(t, {"model_bytes_received"}), 10 * number_at(t, {"bytes_received"})) << name;
    EXPECT_GT(number_at(t, {"bytes_sent"}), 0) << name;
  }
  for (auto& e : r.all) {
    if (e.find("type")->as_string() == "model_sent")
      EXPECT_GT(number_at(e, {"chunks"}), 1);
    if (e.find("type")->as_string() == "server_step") // all 8 public examples by default
      EXPECT_EQ(number_at(e, {"examples"}), 8);
  }
}

TEST(methods, fedsp_and_fedprompt_single_run_with_an_auxiliary_model_that_dropped_the_last_layer) {
  // Layer dropping keeps global layers 0 of 2: the clients' prompts still
  // have the global model's depth. Every task used to be refused as a shape
  // mismatch (the depth was taken from the layer map: 1), and the run
  // ended at version 0.
  for (auto method : {"fedsp", "fedprompt_single"}) {
    auto r = run_method(method, 0, "", "drop");
    EXPECT_EQ(number_at(r.summary, {"final_version"}), 2) << method;
    EXPECT_EQ(r.events["update"], 6) << method;
    EXPECT_EQ(r.events["task_failed"], 0) << method;
  }
}

TEST(methods, fedsp_runs_end_to_end_with_opt_and_llama_models) {
  for (auto family : {"opt", "llama"}) {
    auto r = run_method("fedsp", 0, family);
    EXPECT_EQ(r.events["model_sent"], 3) << family;
    EXPECT_EQ(r.events["server_step"], 2) << family;
    EXPECT_EQ(number_at(r.summary, {"final_version"}), 2) << family;
    EXPECT_LT(number_at(r.summary, {"parameters", "auxiliary"}),
              number_at(r.summary, {"parameters", "global"}))
      << family;
    // Every client trained the auxiliary body and its prompts on its data:
    // finite losses on both sides of local training.
    int updates = 0;
    for (auto& e : r.all)
      if (e.find("type")->as_string() == "update") {
        ++updates;
        EXPECT_TRUE(std::isfinite(number_at(e, {"loss_before"}))) << family;
        EXPECT_TRUE(std::isfinite(number_at(e, {"loss_after"}))) << family;
      }
    EXPECT_EQ(updates, 6) << family;
  }
}

TEST(methods, fedsp_server_step_uses_only_the_labelled_examples_it_is_given) {
  auto r = run_method("fedsp", 3);
  EXPECT_EQ(r.events["server_step"], 2);
  for (auto& e : r.all)
    if (e.find("type")->as_string() == "server_step")
      EXPECT_EQ(number_at(e, {"examples"}), 3);
}

TEST(methods, fedprompt_ships_the_global_model_and_has_no_server_step) {
  auto r = run_method("fedprompt");
  EXPECT_EQ(r.events["model_sent"], 3);
  EXPECT_EQ(r.events["server_step"], 0);
  EXPECT_EQ(r.events["distill"], 0);
  EXPECT_EQ(number_at(r.summary, {"parameters", "auxiliary"}), 0);
  EXPECT_TRUE(std::isnan(number_at(r.summary, {"final", "aux", "test_acc"})));
}

TEST(methods, fedprompt_single_uses_the_auxiliary_model_without_a_server_step) {
  auto r = run_method("fedprompt_single");
  EXPECT_EQ(r.events["distill"], 1);
  EXPECT_EQ(r.events["server_step"], 0);
  EXPECT_GT(number_at(r.summary, {"parameters", "auxiliary"}), 0);
}

TEST(methods, local_only_reports_each_clients_own_prompts) {
  auto r = run_method("local");
  EXPECT_EQ(r.events["aggregate"], 2); // updates are collected, not averaged into one
  auto* per = r.summary.find("final")->find("per_client_test_acc");
  ASSERT_NE(per, nullptr);
  EXPECT_EQ(per->as_array().size(), 3u);
  double mean = 0;
  for (auto& a : per->as_array())
    mean += a.as_number() / 3;
  EXPECT_NEAR(number_at(r.summary, {"final", "global", "test_acc"}), mean, 1e-9);
}

TEST(methods, centralized_runs_one_party_with_all_the_data) {
  auto r = run_method("centralized");
  EXPECT_EQ(number_at(r.summary, {"clients"}), 1);
  EXPECT_EQ(r.events["join"], 1);
}

TEST(methods, zeroshot_trains_nothing) {
  auto r = run_method("zeroshot");
  EXPECT_EQ(r.events["task"], 0);
  EXPECT_EQ(r.events["model_sent"], 0);
  EXPECT_EQ(number_at(r.summary, {"final_version"}), 0);
  EXPECT_EQ(number_at(r.summary, {"initial", "global", "test_acc"}),
            number_at(r.summary, {"final", "global", "test_acc"}));
}

} // namespace
} // namespace fedsp
