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

fs::path summary_dir(const std::string& name, const std::string& summary) {
  auto d = fs::temp_directory_path()
           / ("fedsp_compare_test_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  std::ofstream(d / "summary.json") << summary;
  return d;
}

std::string scored(double v0, double v1, double v2) {
  return R"({"initial":{"global":{"test_acc":)" + std::to_string(v0)
         + R"(}},"per_round":[{"version":1,"test_acc":)" + std::to_string(v1)
         + R"(},{"version":2,"test_acc":)" + std::to_string(v2) + "}]}";
}

TEST(compare, mean_band_and_final_figures_over_seeds) {
  auto a1 = summary_dir("a1", scored(0.5, 0.6, 0.8)), a2 = summary_dir("a2", scored(0.5, 0.7, 0.9));
  auto z = summary_dir("z", R"({"initial":{"global":{"test_acc":0.65}},"per_round":[]})");
  std::string table;
  auto svg = comparison_svg({{"FedSP", {a1.string(), a2.string()}}, {"Zero-shot", {z.string()}}},
                            "acc", &table);
  ASSERT_TRUE(svg) << svg.err().text;
  // Final accuracies 0.8 and 0.9: mean 0.85, sample sd 0.0707.
  EXPECT_NE(table.find("FedSP"), std::string::npos);
  EXPECT_NE(table.find("runs 2  final test acc 0.850 +- 0.071  (min 0.800, max 0.900)"),
            std::string::npos) << table;
  EXPECT_NE(table.find("runs 1  final test acc 0.650 +- 0.000"), std::string::npos) << table;
  auto& out = svg.value();
  // The mean at version 2 is 0.85 (hover text); the band is a filled path.
  EXPECT_NE(out.find("<title>FedSP 2: 0.85</title>"), std::string::npos) << out;
  EXPECT_NE(out.find("fill-opacity='0.15'"), std::string::npos);
  // Zero-shot is a dashed level, and both are in the legend.
  EXPECT_NE(out.find("stroke-dasharray"), std::string::npos);
  EXPECT_NE(out.find(">Zero-shot</text>"), std::string::npos);
  EXPECT_NE(out.find(">FedSP</text>"), std::string::npos);
  for (auto& d : {a1, a2, z})
    fs::remove_all(d);
}

TEST(compare, unreadable_or_unscored_runs_are_named) {
  auto bad = summary_dir("bad", "{not json");
  auto none = summary_dir("none", R"({"per_round":[{"version":1}]})");
  auto r = comparison_svg({{"A", {bad.string()}}}, "t");
  ASSERT_FALSE(r);
  EXPECT_NE(r.err().text.find(bad.string() + "/summary.json"), std::string::npos);
  r = comparison_svg({{"A", {none.string()}}}, "t");
  ASSERT_FALSE(r);
  EXPECT_NE(r.err().text.find("no scored version"), std::string::npos) << r.err().text;
  r = comparison_svg({{"A", {"/nonexistent/run"}}}, "t");
  ASSERT_FALSE(r);
  EXPECT_NE(r.err().text.find("cannot read /nonexistent/run/summary.json"), std::string::npos);
  EXPECT_FALSE(comparison_svg({}, "t"));
  EXPECT_FALSE(comparison_svg({{"A", {}}}, "t"));
  fs::remove_all(bad);
  fs::remove_all(none);
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

TEST(report, scale_plots_put_clients_on_a_log_axis) {
  auto svg = scale_svg("Time per update", "µs per update",
                       {{"null", {{10, 40}, {1000, 35}, {100000, 50}}},
                        {"bad points", {{0, 1}, {-5, 2}}}});
  // Ticks at every power of ten from 10 to 100,000, with separators.
  for (auto tick : {">10<", ">100<", ">1,000<", ">10,000<", ">100,000<"})
    EXPECT_NE(svg.find(tick), std::string::npos) << tick;
  // Equal ratios take equal room: 10 -> 1,000 as wide as 1,000 -> 100,000.
  auto x_of = [&](const std::string& title) {
    auto at = svg.find("<title>" + title + "</title>");
    EXPECT_NE(at, std::string::npos) << title;
    auto cx = svg.rfind("cx='", at);
    return std::stod(svg.substr(cx + 4));
  };
  double a = x_of("null 10: 40"), b = x_of("null 1,000: 35"), c = x_of("null 100,000: 50");
  EXPECT_NEAR(b - a, c - b, 0.5);
  // Clients of zero or fewer have no place on a log axis: left out.
  EXPECT_EQ(svg.find("bad points 0:"), std::string::npos);
  EXPECT_EQ(svg.find("nan"), std::string::npos);
}

} // namespace
} // namespace fedsp
