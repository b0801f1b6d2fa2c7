// FedAvg: properties over generated inputs, and its refusals.
#include <algorithm>
#include <cmath>

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include "runtime/fedavg.hpp"
#include "runtime/rng.hpp"
#include "tests/runtime/test_util.hpp"

namespace fedsp {
namespace {

struct case_data {
  std::vector<prompt_set> sets;
  std::vector<double> weights;

  std::vector<weighted_prompts> inputs() const {
    std::vector<weighted_prompts> out;
    for (std::size_t i = 0; i < sets.size(); ++i)
      out.push_back({i + 1, weights[i], &sets[i]});
    return out;
  }
};

rc::Gen<case_data> any_case() {
  return rc::gen::exec([] {
    case_data c;
    auto n = *rc::gen::inRange<std::size_t>(1, 8);
    auto len = *rc::gen::inRange<std::uint32_t>(1, 20);
    for (std::size_t i = 0; i < n; ++i) {
      auto ps = test::make_prompts({len});
      for (auto& v : ps.tensors[0].data)
        v = static_cast<float>(*rc::gen::inRange(-100000, 100000)) / 1000.f;
      c.sets.push_back(std::move(ps));
      c.weights.push_back(*rc::gen::inRange(1, 1000));
    }
    return c;
  });
}

RC_GTEST_PROP(fedavg_properties, stays_within_elementwise_min_and_max, ()) {
  auto c = *any_case();
  auto avg = fedavg(c.inputs());
  RC_ASSERT(avg.ok());
  auto& out = avg.value().tensors[0].data;
  for (std::size_t k = 0; k < out.size(); ++k) {
    float lo = INFINITY, hi = -INFINITY;
    for (auto& s : c.sets) {
      lo = std::min(lo, s.tensors[0].data[k]);
      hi = std::max(hi, s.tensors[0].data[k]);
    }
    RC_ASSERT(out[k] >= lo);
    RC_ASSERT(out[k] <= hi);
  }
}

RC_GTEST_PROP(fedavg_properties, returns_the_input_when_all_inputs_are_equal, ()) {
  auto c = *any_case();
  for (auto& s : c.sets)
    s = c.sets.front();
  auto avg = fedavg(c.inputs());
  RC_ASSERT(avg.ok());
  RC_ASSERT(avg.value().tensors[0].data == c.sets.front().tensors[0].data);
}

RC_GTEST_PROP(fedavg_properties, is_permutation_invariant, ()) {
  auto c = *any_case();
  auto permuted = c;
  std::vector<std::size_t> order(c.sets.size());
  for (std::size_t i = 0; i < order.size(); ++i)
    order[i] = i;
  rng r(*rc::gen::arbitrary<std::uint64_t>());
  shuffle(order, r);
  for (std::size_t i = 0; i < order.size(); ++i) {
    permuted.sets[i] = c.sets[order[i]];
    permuted.weights[i] = c.weights[order[i]];
  }
  auto a = fedavg(c.inputs());
  auto b = fedavg(permuted.inputs());
  RC_ASSERT(a.ok() && b.ok());
  auto& x = a.value().tensors[0].data;
  auto& y = b.value().tensors[0].data;
  // The double accumulator may differ in its last bits with the order of the
  // sum; after rounding to float the results agree to 1 unit in the last place.
  for (std::size_t k = 0; k < x.size(); ++k)
    RC_ASSERT(std::fabs(x[k] - y[k]) <= std::fabs(x[k]) * 1.2e-7f + 1e-30f);
}

TEST(fedavg, weights_by_sample_count) {
  auto a = test::make_prompts({2}, 0.f, 0.f);  // {0, 0}
  auto b = test::make_prompts({2}, 4.f, 0.f);  // {4, 4}
  auto avg = fedavg({{1, 3.0, &a}, {2, 1.0, &b}});
  ASSERT_TRUE(avg.ok());
  EXPECT_FLOAT_EQ(avg.value().tensors[0].data[0], 1.0f); // (3*0 + 1*4) / 4
}

TEST(fedavg, no_inputs_is_an_error_not_a_crash) {
  auto avg = fedavg({});
  ASSERT_FALSE(avg.ok());
  EXPECT_EQ(avg.err().code, errc::empty_input);
}

TEST(fedavg, non_positive_or_nan_weight_is_refused) {
  auto a = test::make_prompts({2});
  for (double w : {0.0, -1.0, double(NAN), double(INFINITY)}) {
    auto avg = fedavg({{7, w, &a}});
    ASSERT_FALSE(avg.ok());
    EXPECT_EQ(avg.err().code, errc::bad_argument);
    EXPECT_NE(avg.err().text.find("update 7"), std::string::npos);
  }
}

TEST(fedavg, mismatched_layouts_are_refused_naming_the_update) {
  auto a = test::make_prompts({2, 3});
  auto b = test::make_prompts({3, 2});
  auto avg = fedavg({{1, 1.0, &a}, {2, 1.0, &b}});
  ASSERT_FALSE(avg.ok());
  EXPECT_EQ(avg.err().code, errc::shape_mismatch);
  EXPECT_NE(avg.err().text.find("update 2"), std::string::npos) << avg.err().text;
}

} // namespace
} // namespace fedsp
