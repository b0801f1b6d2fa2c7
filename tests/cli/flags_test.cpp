// cli/flags.hpp: what every command says about its flags.
#include <gtest/gtest.h>

#include "cli/flags.hpp"

#include <optional>
#include <string>
#include <vector>

using fedsp::cli::arguments;
using fedsp::cli::flag_spec;

namespace {

const flag_spec run_like{
  {{"--out"}, {"--seed"}, {"--quiet", false}, {"--set", true, true}, {"--rate"}}, 1, "scenario"};

std::optional<std::string> parse(const std::vector<std::string>& args, arguments& a) {
  return arguments::parse("run", run_like, args, a);
}

} // namespace

TEST(flags, values_switches_repeats_and_the_positional) {
  arguments a;
  auto err = parse({"s.yaml", "--out", "d", "--quiet", "--set", "a=1", "--set", "b=2"}, a);
  ASSERT_FALSE(err) << *err;
  EXPECT_EQ(a.positional(), std::vector<std::string>{"s.yaml"});
  EXPECT_EQ(a.get("--out"), "d");
  EXPECT_TRUE(a.has("--quiet"));
  EXPECT_FALSE(a.has("--seed"));
  EXPECT_EQ(a.get("--seed", "7"), "7");
  EXPECT_EQ(a.all("--set"), (std::vector<std::string>{"a=1", "b=2"}));
  arguments empty;
  ASSERT_FALSE(parse({"--out", ""}, empty));
  EXPECT_EQ(empty.get("--out", "runs/x"), "runs/x");
}

TEST(flags, a_value_that_looks_like_a_flag_is_the_value) {
  arguments a;
  ASSERT_FALSE(parse({"--seed", "-3"}, a));
  std::uint64_t seed = 0;
  auto err = a.integer("--seed", 0, 10, seed);
  ASSERT_TRUE(err);
  EXPECT_EQ(*err, "run: --seed needs an integer in [0, 10], got '-3'");
  EXPECT_EQ(seed, 0u);
}

TEST(flags, mistakes_are_named_with_the_command) {
  auto msg = [](std::vector<std::string> args) {
    arguments a;
    auto err = parse(args, a);
    return err ? *err : std::string("accepted");
  };
  EXPECT_EQ(msg({"--fast"}), "run: unknown option '--fast' (see 'fedsp run --help')");
  EXPECT_EQ(msg({"x.yaml", "--out"}), "run: --out needs a value");
  EXPECT_EQ(msg({"--out", "a", "--out", "b"}), "run: --out given twice");
  EXPECT_EQ(msg({"a.yaml", "b.yaml"}), "run: more than one scenario given ('a.yaml', 'b.yaml')");
  arguments a;
  EXPECT_EQ(*arguments::parse("eval", {{{"--model"}}}, {"stray"}, a),
            "eval: unexpected argument 'stray' (see 'fedsp eval --help')");
}

TEST(flags, numbers_are_checked_whole) {
  for (std::string bad : {"ten", "1e3", "", " 5", "18446744073709551616", "0x10"}) {
    arguments a;
    ASSERT_FALSE(parse({"--seed", bad}, a));
    std::uint64_t v = 9;
    EXPECT_TRUE(a.integer("--seed", 0, ~std::uint64_t{0}, v)) << bad;
    EXPECT_EQ(v, 9u) << bad;
  }
  for (std::string bad : {"fast", "nan", "inf", "1.5.2", ""}) {
    arguments a;
    ASSERT_FALSE(parse({"--rate", bad}, a));
    double r = 0.5;
    auto err = a.real("--rate", r);
    ASSERT_TRUE(err) << bad;
    EXPECT_EQ(*err, "run: --rate needs a number, got '" + bad + "'");
    EXPECT_EQ(r, 0.5);
  }
  arguments a;
  ASSERT_FALSE(parse({"--rate", "2.5e-3", "--seed", "18446744073709551615"}, a));
  double r = 0;
  std::uint64_t s = 0;
  EXPECT_FALSE(a.real("--rate", r));
  EXPECT_FALSE(a.integer("--seed", 0, ~std::uint64_t{0}, s));
  EXPECT_EQ(r, 2.5e-3);
  EXPECT_EQ(s, ~std::uint64_t{0});
}
