// Client heterogeneity (runtime/profile.hpp): distributions as scenarios
// write them, reproducible sampling, trace files and their errors.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>

#include <gtest/gtest.h>
#include <unistd.h>

#include "runtime/profile.hpp"

namespace fedsp {
namespace {

namespace fs = std::filesystem;

fs::path temp_dir() {
  auto d = fs::temp_directory_path() / ("fedsp_profile_test_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}

TEST(distribution, constants_uniform_and_lognormal_sample_reproducibly) {
  auto c = parse_distribution("2.5", 0, 10, "").value();
  EXPECT_EQ(c.sample(3, 1), (std::vector<double>{2.5, 2.5, 2.5}));
  auto u = parse_distribution("uniform(1, 2)", 0, 10, "").value();
  auto us = u.sample(100, 7);
  EXPECT_EQ(us, u.sample(100, 7));
  EXPECT_NE(us, u.sample(100, 8));
  for (auto v : us)
    EXPECT_TRUE(v >= 1 && v < 2);
  // lognormal(mu, sigma): the median of exp(N(mu, sigma)) is exp(mu).
  auto l = parse_distribution("lognormal(1, 0.5)", 0, 1e9, "").value().sample(4001, 3);
  std::nth_element(l.begin(), l.begin() + 2000, l.end());
  EXPECT_NEAR(l[2000], std::exp(1.0), 0.15);
}

TEST(distribution, tiers_give_exact_shares) {
  auto t = parse_distribution("tiers(0.7=1, 0.3=0.1)", 1e-6, 10, "").value();
  for (std::uint64_t seed : {1, 2, 3}) {
    auto s = t.sample(50, seed);
    EXPECT_EQ(std::count(s.begin(), s.end(), 0.1), 15);
    EXPECT_EQ(std::count(s.begin(), s.end(), 1.0), 35);
  }
  EXPECT_NE(t.sample(50, 1), t.sample(50, 2)); // which clients are slow depends on the seed
}

TEST(distribution, bad_forms_say_what_is_expected) {
  for (auto bad : {"", "fast", "uniform(2, 1)", "uniform(1)", "lognormal(0, -1)",
                   "tiers()", "tiers(0.5 1)", "tiers(0.5=1, 0.6=2)", "constant(x)", "nan",
                   "trace()"}) {
    auto r = parse_distribution(bad, 0, 100, "");
    EXPECT_FALSE(r) << bad;
  }
  EXPECT_NE(parse_distribution("200", 0, 100, "").err().text.find("out of range"),
            std::string::npos);
}

TEST(distribution, trace_files_cycle_and_report_bad_lines) {
  auto dir = temp_dir();
  std::ofstream(dir / "speeds.txt") << "# per-client speeds\n1\n0.5\n\n0.25 # slow\n";
  auto t = parse_distribution("trace(speeds.txt)", 1e-6, 10, dir.string()).value();
  EXPECT_EQ(t.sample(5, 1), (std::vector<double>{1, 0.5, 0.25, 1, 0.5}));
  std::ofstream(dir / "bad.txt") << "1\nfast\n";
  auto e = parse_distribution("trace(bad.txt)", 1e-6, 10, dir.string()).err().text;
  EXPECT_NE(e.find("bad.txt:2: 'fast'"), std::string::npos) << e;
  EXPECT_EQ(parse_distribution("trace(none.txt)", 0, 1, dir.string()).err().code, errc::io);
}

TEST(availability, probability_draws_are_reproducible_and_near_p) {
  auto a = parse_availability("probability(0.8)", "").value();
  int online = 0;
  for (std::uint32_t c = 0; c < 100; ++c)
    for (std::uint64_t round = 0; round < 20; ++round) {
      bool on = a.online(c, 0, round, 42);
      EXPECT_EQ(on, a.online(c, 1e6, round, 42)); // per round, not per time
      online += on ? 1 : 0;
    }
  EXPECT_NEAR(online / 2000.0, 0.8, 0.03);
  EXPECT_FALSE(parse_availability("probability(0)", ""));
  EXPECT_FALSE(parse_availability("probability(1.5)", ""));
}

TEST(availability, traces_give_online_windows) {
  auto dir = temp_dir();
  std::ofstream(dir / "on.txt") << "# client start end\n0 0 10\n0 20 30\n";
  auto a = parse_availability("trace(on.txt)", dir.string()).value();
  EXPECT_TRUE(a.online(0, 5, 0, 1));
  EXPECT_FALSE(a.online(0, 15, 0, 1));
  EXPECT_TRUE(a.online(1, 15, 0, 1)); // not listed: always online
  EXPECT_EQ(a.offline_at(0, 21), 30);
  EXPECT_TRUE(std::isinf(a.offline_at(1, 21)));
  std::ofstream(dir / "bad.txt") << "0 10 5\n";
  auto e = parse_availability("trace(bad.txt)", dir.string()).err().text;
  EXPECT_NE(e.find("bad.txt:1"), std::string::npos) << e;
}

} // namespace
} // namespace fedsp
