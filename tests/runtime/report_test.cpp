// metrics.csv and report.html (runtime/report.hpp): what they hold, and
// clear errors for a run directory that cannot be read.
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <unistd.h>

#include "runtime/report.hpp"

namespace fedsp {
namespace {

namespace fs = std::filesystem;

const char* summary_text =
  R"({"scenario":"s","method":"fedsp","mode":"sync","clock":"virtual","t_end":40,)"
  R"("initial":{"global":{"test_acc":0.5,"test_acc_norm":0.5,"test_loss":2}},)"
  R"("per_round":[{"round":1,"version":1,"t":20,"test_acc":0.6,"updates":2},)"
  R"({"round":2,"version":2,"t":40,"updates":2}]})";

fs::path run_dir(const std::string& events, const std::string& summary = summary_text) {
  auto d = fs::temp_directory_path() / ("fedsp_report_test_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  std::ofstream(d / "summary.json") << summary;
  std::ofstream(d / "events.jsonl") << events;
  return d;
}

std::string read(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(report, metrics_has_a_row_per_version_and_blanks_where_not_scored) {
  auto d = run_dir(R"({"type":"task","t":0,"task":1,"client":0,"start":0,"finish":20})" "\n"
                   R"({"type":"update","t":20,"task":1,"client":0,"staleness":0})" "\n"
                   R"({"type":"publish","t":20,"version":1})" "\n");
  ASSERT_FALSE(write_run_report(d.string()));
  auto csv = read(d / "metrics.csv");
  EXPECT_NE(csv.find("version,round,t,test_acc"), std::string::npos);
  EXPECT_NE(csv.find("\n0,0,0,0.5,0.5,2,"), std::string::npos) << csv;
  EXPECT_NE(csv.find("\n1,1,20,0.6,"), std::string::npos) << csv;
  EXPECT_NE(csv.find("\n2,2,40,,,"), std::string::npos) << csv; // not scored
  auto html = read(d / "report.html");
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_NE(html.find("task 1: accepted"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  fs::remove_all(d);
}

TEST(report, shows_losses_durations_and_round_ticks_a_reader_can_use) {
  auto d = run_dir("",
                   R"({"scenario":"s","method":"fedsp","t_end":754,)"
                   R"("initial":{"global":{"test_acc":0.5,"test_acc_norm":0.5}},)"
                   R"("per_round":[{"round":1,"version":1,"t":377,"test_acc":0.6,)"
                   R"("mean_loss_before":0.9,"mean_loss_after":0.7},)"
                   R"({"round":2,"version":2,"t":754,"test_acc":0.58,)"
                   R"("mean_loss_before":0.8,"mean_loss_after":0.6}]})");
  ASSERT_FALSE(write_run_report(d.string()));
  auto html = read(d / "report.html");
  // 754 s on the run clock reads as minutes and seconds.
  EXPECT_NE(html.find("12 min 34 s"), std::string::npos);
  // Accuracies 0.5 to 0.6: ticks every 0.05, printed with two decimals.
  EXPECT_NE(html.find(">0.55</text>"), std::string::npos);
  EXPECT_EQ(html.find("0.5500"), std::string::npos);
  // The clients' losses are plotted; the server's (absent) are not.
  EXPECT_NE(html.find("Training loss"), std::string::npos);
  EXPECT_NE(html.find("clients, before local training"), std::string::npos);
  EXPECT_EQ(html.find("server step, before"), std::string::npos);
  EXPECT_NE(html.find("updates accepted"), std::string::npos);
  EXPECT_EQ(html.find("updates_accepted"), std::string::npos);
  fs::remove_all(d);
  // Without any loss recorded there is no loss plot.
  d = run_dir("");
  ASSERT_FALSE(write_run_report(d.string()));
  EXPECT_EQ(read(d / "report.html").find("Training loss"), std::string::npos);
  fs::remove_all(d);
}

TEST(report, unreadable_runs_are_named) {
  auto d = run_dir("{\"type\":\"task\"}\nnot json\n");
  auto err = write_run_report(d.string());
  ASSERT_TRUE(err);
  EXPECT_NE(err->text.find("events.jsonl:2"), std::string::npos) << err->text;
  fs::remove(d / "summary.json");
  err = write_run_report(d.string());
  ASSERT_TRUE(err);
  EXPECT_EQ(err->code, errc::io);
  EXPECT_NE(err->text.find("summary.json"), std::string::npos);
  fs::remove_all(d);
}

} // namespace
} // namespace fedsp
