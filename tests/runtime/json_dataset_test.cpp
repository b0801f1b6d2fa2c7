// JSON values, task JSONL files and partitions.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include <gtest/gtest.h>
#include <unistd.h>

#include "runtime/dataset.hpp"
#include "runtime/json.hpp"

namespace fedsp {
namespace {

TEST(json, parse_and_dump_round_trip) {
  auto text = R"({"a":1,"b":[true,false,null],"c":"x\"y\n\u00e9","d":-2.5})";
  auto j = json::parse(text);
  ASSERT_TRUE(j.ok()) << j.err().text;
  EXPECT_EQ(j.value().find("c")->as_string(), "x\"y\n\xc3\xa9");
  auto again = json::parse(j.value().dump());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again.value().dump(), j.value().dump());
}

TEST(json, malformed_documents_are_errors_with_an_offset) {
  for (auto bad : {"{", "[1,]", "{\"a\" 1}", "tru", "\"open", "1 2", "{\"a\":1,}"}) {
    auto j = json::parse(bad);
    EXPECT_FALSE(j.ok()) << bad;
    if (!j.ok()) {
      EXPECT_NE(j.err().text.find("offset"), std::string::npos);
    }
  }
  std::string deep(1000, '[');
  EXPECT_FALSE(json::parse(deep).ok());
}

TEST(json, repeated_keys_keep_the_last_value_like_json_parse) {
  auto j = json::parse(R"({"a":1,"b":2,"a":3})");
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(j.value().as_object().size(), 2u);
  EXPECT_EQ(j.value().find("a")->as_number(), 3);
}

TEST(json, lone_surrogates_become_replacement_characters) {
  auto j = json::parse(R"(["\ud800x", "\udc00", "\ud83d\ude00"])");
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(j.value().as_array()[0].as_string(), "\xef\xbf\xbdx");
  EXPECT_EQ(j.value().as_array()[1].as_string(), "\xef\xbf\xbd");
  EXPECT_EQ(j.value().as_array()[2].as_string(), "\xf0\x9f\x98\x80");
}

TEST(json, an_escaped_backslash_before_u_is_text_not_a_surrogate) {
  auto j = json::parse(R"(["\\ud800", "a\\"])");
  ASSERT_TRUE(j.ok()) << j.err().text;
  EXPECT_EQ(j.value().as_array()[0].as_string(), "\\ud800");
  EXPECT_EQ(j.value().as_array()[1].as_string(), "a\\");
}

TEST(json, invalid_utf8_and_deep_nesting_are_refused_naming_why) {
  auto bad = json::parse("[\"caf\xe9\"]"); // Latin-1, not UTF-8
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.err().text.find("UTF-8"), std::string::npos) << bad.err().text;
  EXPECT_NE(bad.err().text.find("offset"), std::string::npos) << bad.err().text;
  auto deep = json::parse(std::string(200, '[') + std::string(200, ']'));
  ASSERT_FALSE(deep.ok());
  EXPECT_NE(deep.err().text.find("nesting too deep"), std::string::npos) << deep.err().text;
  EXPECT_TRUE(json::parse(std::string(100, '[') + std::string(100, ']')).ok());
}

TEST(json, non_finite_numbers_are_written_as_null) {
  json j = json::object{{"x", NAN}};
  EXPECT_EQ(j.dump(), R"({"x":null})");
}

class task_file : public ::testing::Test {
protected:
  // One file per test process: ctest runs the tests of this fixture in
  // parallel processes, and a shared name let one remove the other's file.
  std::filesystem::path path = std::filesystem::temp_directory_path()
                               / ("fedsp_task_" + std::to_string(::getpid()) + ".jsonl");
  void write(const std::string& text) { std::ofstream(path) << text; }
  void TearDown() override { std::filesystem::remove(path); }
};

TEST_F(task_file, reads_examples_and_groups) {
  write(R"({"context":"hi","choices":[" ham"," spam"],"label":1,"group":"list-a"})"
        "\n\n"
        R"({"context":"yo","choices":[" a"," b"," c"],"label":0})" "\n");
  auto r = load_task_jsonl(path.string());
  ASSERT_TRUE(r.ok()) << r.err().text;
  ASSERT_EQ(r.value().size(), 2u);
  EXPECT_EQ(r.value()[0].label, 1);
  EXPECT_EQ(r.value()[0].group, "list-a");
  EXPECT_EQ(r.value()[1].choices.size(), 3u);
}

TEST_F(task_file, bad_lines_are_reported_with_file_and_line) {
  write(R"({"context":"hi","choices":[" a"," b"],"label":0})" "\n"
        R"({"context":"hi","choices":[" a"," b"],"label":2})" "\n");
  auto r = load_task_jsonl(path.string());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.err().text.find(path.string() + ":2"), std::string::npos) << r.err().text;
  EXPECT_NE(r.err().text.find("label"), std::string::npos);

  write("{not json\n");
  EXPECT_NE(load_task_jsonl(path.string()).err().text.find(":1:"), std::string::npos);
  write(R"({"context":"hi","choices":[" only"],"label":0})" "\n");
  EXPECT_NE(load_task_jsonl(path.string()).err().text.find("choices"), std::string::npos);
  write("\n");
  EXPECT_EQ(load_task_jsonl(path.string()).err().code, errc::empty_input);
  EXPECT_EQ(load_task_jsonl("/nonexistent.jsonl").err().code, errc::io);
}

TEST(partition, iid_shards_cover_everything_once_with_balanced_sizes) {
  auto shards = partition_iid(103, 4, 9);
  std::set<std::size_t> seen;
  for (auto& s : shards) {
    EXPECT_GE(s.size(), 25u);
    EXPECT_LE(s.size(), 26u);
    seen.insert(s.begin(), s.end());
  }
  EXPECT_EQ(seen.size(), 103u);
  EXPECT_EQ(partition_iid(103, 4, 9), shards); // same seed, same shards
}

TEST(synthetic_task, is_balanced_and_labels_follow_the_majority) {
  auto data = make_synthetic_task(200, 3);
  int negatives = 0;
  for (auto& ex : data) {
    negatives += ex.label;
    int pos = 0, neg = 0;
    for (auto w : {"good", "great", "fine", "nice", "happy", "calm"})
      for (auto p = ex.context.find(w); p != std::string::npos; p = ex.context.find(w, p + 1))
        ++pos;
    for (auto w : {"bad", "awful", "poor", "sad", "angry", "grim"})
      for (auto p = ex.context.find(w); p != std::string::npos; p = ex.context.find(w, p + 1))
        ++neg;
    EXPECT_EQ(ex.label, neg > pos ? 1 : 0) << ex.context;
  }
  EXPECT_EQ(negatives, 100);
}

} // namespace
} // namespace fedsp

namespace fedsp {
namespace {

TEST(partition, dirichlet_skews_labels_more_as_alpha_falls) {
  std::vector<int> labels;
  for (int i = 0; i < 2000; ++i)
    labels.push_back(i % 2);
  // Mean over clients of |share of label 1 - 0.5|: the label skew.
  auto skew = [&](double alpha) {
    auto parts = partition_dirichlet(labels, 10, alpha, 5).value();
    double total = 0;
    std::size_t covered = 0;
    for (auto& p : parts) {
      double ones = 0;
      for (auto i : p)
        ones += labels[i];
      total += std::fabs(ones / static_cast<double>(p.size()) - 0.5);
      covered += p.size();
    }
    EXPECT_EQ(covered, labels.size());
    return total / 10;
  };
  double low = skew(0.1), high = skew(100.0);
  std::printf("label skew: alpha 0.1 -> %.3f, alpha 100 -> %.3f\n", low, high);
  EXPECT_GT(low, 0.25);
  EXPECT_LT(high, 0.05);
  EXPECT_EQ(partition_dirichlet(labels, 10, 0.5, 5).value(),
            partition_dirichlet(labels, 10, 0.5, 5).value());
  EXPECT_FALSE(partition_dirichlet(labels, 10, 0.0, 5).ok());
}

TEST(partition, gamma_sampler_has_the_right_mean) {
  std::mt19937_64 r(3);
  for (double shape : {0.3, 1.0, 4.0}) {
    double sum = 0;
    for (int i = 0; i < 20000; ++i)
      sum += sample_gamma(shape, r);
    EXPECT_NEAR(sum / 20000, shape, 0.05 * shape + 0.01) << shape; // E[Gamma(k, 1)] = k
  }
}

TEST(partition, by_group_keeps_groups_whole_and_balances_sizes) {
  std::vector<std::string> groups;
  for (int i = 0; i < 60; ++i)
    groups.push_back("big");
  for (int i = 0; i < 30; ++i)
    groups.push_back("mid");
  for (int i = 0; i < 25; ++i)
    groups.push_back("small");
  for (int i = 0; i < 5; ++i)
    groups.push_back("tiny");
  auto parts = partition_by_group(groups, 2).value();
  ASSERT_EQ(parts.size(), 2u);
  for (auto& p : parts) {
    std::set<std::string> names;
    for (auto i : p)
      names.insert(groups[i]);
    for (auto& n : names) // a group never straddles two clients
      EXPECT_EQ(std::count_if(p.begin(), p.end(), [&](auto i) { return groups[i] == n; }),
                std::count(groups.begin(), groups.end(), n));
  }
  EXPECT_EQ(parts[0].size(), 60u); // big | mid + small + tiny
  EXPECT_EQ(parts[1].size(), 60u);
  auto few = partition_by_group(groups, 5);
  ASSERT_FALSE(few.ok());
  EXPECT_NE(few.err().text.find("4 groups for 5 clients"), std::string::npos);
}

} // namespace
} // namespace fedsp
