// id_set against std::set: the same members, and kth(k) is the k-th of them
// in order, after any sequence of inserts and erases.
#include <set>

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include "runtime/id_set.hpp"

namespace fedsp {
namespace {

RC_GTEST_PROP(id_set, agrees_with_an_ordered_set_after_any_inserts_and_erases,
              (const std::vector<std::pair<bool, std::uint16_t>>& ops)) {
  id_set s;
  std::set<std::uint32_t> model;
  for (auto [insert, raw] : ops) {
    std::uint32_t id = raw % 3000; // ids past the first range: the set grows
    if (insert)
      RC_ASSERT(s.insert(id) == model.insert(id).second);
    else
      RC_ASSERT(s.erase(id) == (model.erase(id) == 1));
  }
  RC_ASSERT(s.size() == model.size());
  std::size_t k = 0;
  for (auto id : model) {
    RC_ASSERT(s.contains(id));
    RC_ASSERT(s.kth(k) == id);
    ++k;
  }
}

TEST(id_set, a_large_range_answers_every_rank) {
  id_set s;
  for (std::uint32_t id = 0; id < 100'000; id += 3)
    s.insert(id);
  ASSERT_EQ(s.size(), 33'334u);
  EXPECT_EQ(s.kth(0), 0u);
  EXPECT_EQ(s.kth(1), 3u);
  EXPECT_EQ(s.kth(33'333), 99'999u);
  EXPECT_FALSE(s.contains(1));
  EXPECT_FALSE(s.contains(1'000'000));
  EXPECT_FALSE(s.erase(1'000'000));
}

} // namespace
} // namespace fedsp
