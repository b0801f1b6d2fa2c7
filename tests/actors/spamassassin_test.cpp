// Issue 4's acceptance: on real data (make prepared), a CI-sized FedSP run's
// final global test accuracy beats its own zero-shot evaluation and
// FedPrompt-Single's with the same data, clients, rounds and budgets.
#include <filesystem>

#include <gtest/gtest.h>
#include <unistd.h>

#include "actors/federation.hpp"

namespace fedsp {
namespace {

namespace fs = std::filesystem;

double final_acc(const json& summary, const char* which) {
  auto* s = summary.find(which);
  auto* g = s ? s->find("global") : nullptr;
  auto* a = g ? g->find("test_acc") : nullptr;
  return a && a->is_number() ? a->as_number() : -1;
}

result<json> run(scenario sc, const std::string& method) {
  sc.method.name = method;
  run_options opts;
  opts.out_dir = (fs::temp_directory_path()
                  / ("fedsp_spamassassin_" + method + "_" + std::to_string(::getpid())))
                   .string();
  opts.console = false;
  auto out = run_federation(sc, opts);
  fs::remove_all(opts.out_dir);
  return out;
}

TEST(spamassassin, fedsp_beats_zero_shot_and_fedprompt_single) {
  auto sc = load_scenario(FEDSP_SOURCE_DIR "/tests/integration/fedsp_spamassassin.yaml");
  ASSERT_TRUE(sc) << sc.err().text << "\n(run `make prepared` first: make test does)";
  auto fedsp = run(sc.value(), "fedsp");
  ASSERT_TRUE(fedsp) << fedsp.err().text;
  auto single = run(sc.value(), "fedprompt_single");
  ASSERT_TRUE(single) << single.err().text;
  auto zero_shot = final_acc(fedsp.value(), "initial");
  auto fedsp_final = final_acc(fedsp.value(), "final");
  auto single_final = final_acc(single.value(), "final");
  std::printf("zero-shot %.3f, FedSP %.3f, FedPrompt-Single %.3f\n", zero_shot, fedsp_final,
              single_final);
  // Issue 13: FedSP at least 0.05 above zero-shot (10 of the 200 test
  // e-mails) and above FedPrompt-Single. Measured 2026-12-01 with the
  // shipped model of 2.48 bits per byte: zero-shot 0.355, FedSP 0.705,
  // FedPrompt-Single 0.350.
  EXPECT_GT(fedsp_final, zero_shot + 0.05);
  EXPECT_GT(fedsp_final, single_final + 0.05);
}

} // namespace
} // namespace fedsp
