// The session pager (runtime/pager.hpp): least recently used out first,
// pinned sessions never, a new session counted in without a restore, and
// the totals a run reports; prefetch ahead of a queued task.
#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "runtime/pager.hpp"

namespace fedsp {
namespace {

struct fake {
  std::vector<std::string> log;
  std::mutex mu; // prefetch restores on the pager's thread
  session_pager::hooks hooks(const std::string& name) {
    return {[this, name] {
              std::lock_guard<std::mutex> lock(mu);
              log.push_back("out " + name);
              return 0.5;
            },
            [this, name] {
              std::lock_guard<std::mutex> lock(mu);
              log.push_back("in " + name);
              return 0.25;
            }};
  }
};

TEST(pager, evicts_the_least_recently_used_and_pages_it_back) {
  fake f;
  session_pager p(200); // room for two sessions of 100
  p.acquire(1, 100, f.hooks("a"));
  p.release(1);
  p.acquire(2, 100, f.hooks("b"));
  p.release(2);
  EXPECT_TRUE(f.log.empty()); // both fit; new sessions are not restored
  p.acquire(1, 100, {});      // a used: b is now the least recent
  p.release(1);
  p.acquire(3, 100, f.hooks("c"));
  p.release(3);
  EXPECT_EQ(f.log, (std::vector<std::string>{"out b"}));
  EXPECT_FALSE(p.resident(2));
  EXPECT_EQ(p.acquire(2, 100, {}), 0.25); // back, evicting a (least recent)
  p.release(2);
  EXPECT_EQ(f.log, (std::vector<std::string>{"out b", "out a", "in b"}));
  auto t = p.stats();
  EXPECT_EQ(t.evictions, 2u);
  EXPECT_EQ(t.page_ins, 1u);
  EXPECT_EQ(t.over_budget, 0u);
  EXPECT_EQ(t.peak_resident_bytes, 200u);
  EXPECT_DOUBLE_EQ(t.page_in_seconds, 0.25);
  EXPECT_DOUBLE_EQ(t.offload_seconds, 1.0);
}

TEST(pager, never_evicts_a_pinned_session_and_counts_the_overflow) {
  fake f;
  session_pager p(100);
  p.acquire(1, 100, f.hooks("a")); // pinned: a task is running on it
  p.acquire(2, 100, f.hooks("b")); // does not fit, and a may not go
  EXPECT_TRUE(f.log.empty());
  EXPECT_TRUE(p.resident(1));
  EXPECT_TRUE(p.resident(2));
  EXPECT_EQ(p.stats().over_budget, 1u);
  p.release(1);
  p.release(2);
  p.acquire(3, 100, f.hooks("c")); // now both may go: a first (older), then b
  EXPECT_EQ(f.log, (std::vector<std::string>{"out a", "out b"}));
  p.release(3);
}

TEST(pager, a_session_larger_than_the_budget_still_runs) {
  fake f;
  session_pager p(10);
  p.acquire(1, 100, f.hooks("a"));
  p.release(1);
  EXPECT_TRUE(p.resident(1));
  EXPECT_EQ(p.stats().over_budget, 1u);
  p.acquire(2, 100, f.hooks("b")); // a goes, b is over budget alone
  p.release(2);
  EXPECT_EQ(f.log, (std::vector<std::string>{"out a"}));
  EXPECT_EQ(p.stats().over_budget, 2u);
}

TEST(pager, a_session_that_grew_in_its_task_counts_at_its_new_size) {
  // A session is built with its parameters only; its first task adds the
  // gradients and optimizer moments (4 times the size for AdamW). Sizes
  // taken at build time would keep all three resident in a budget of 100.
  fake f;
  session_pager p(100);
  p.acquire(1, 10, f.hooks("a"));
  p.release(1, 40);
  p.acquire(2, 10, f.hooks("b"));
  p.release(2, 40);
  EXPECT_TRUE(f.log.empty()); // 80 of 100
  p.acquire(3, 10, f.hooks("c"));
  p.release(3, 40); // 120: the least recently used other goes at once
  EXPECT_EQ(f.log, (std::vector<std::string>{"out a"}));
  EXPECT_FALSE(p.resident(1));
  EXPECT_TRUE(p.resident(3));
  EXPECT_EQ(p.stats().peak_resident_bytes, 120u);
  EXPECT_EQ(p.acquire(1, 0, {}), 0.25); // back at its grown size: b goes
  p.release(1, 40);
  EXPECT_EQ(f.log, (std::vector<std::string>{"out a", "out b", "in a"}));
  EXPECT_EQ(p.stats().evictions, 2u);
}

TEST(pager, a_session_alone_over_the_budget_is_not_evicted_by_its_own_release) {
  fake f;
  session_pager p(50);
  p.acquire(1, 10, f.hooks("a"));
  p.release(1, 80);
  EXPECT_TRUE(f.log.empty());
  EXPECT_TRUE(p.resident(1));
}

// Two sessions of 100 in a budget of 200, a third made: a is paged out.
void a_paged_out(session_pager& p, fake& f) {
  p.acquire(1, 100, f.hooks("a"));
  p.release(1);
  p.acquire(2, 100, f.hooks("b"));
  p.release(2);
  p.acquire(3, 100, f.hooks("c"));
  p.release(3);
  ASSERT_EQ(f.log, (std::vector<std::string>{"out a"}));
}

TEST(pager, prefetch_brings_a_queued_tasks_session_back_while_another_trains) {
  fake f;
  session_pager p(200);
  a_paged_out(p, f);
  p.acquire(2, 100, {}); // b's task trains; a's task waits behind it
  p.prefetch(1);
  p.drain();
  EXPECT_EQ(f.log, (std::vector<std::string>{"out a", "out c", "in a"}));
  EXPECT_TRUE(p.resident(1));
  EXPECT_EQ(p.acquire(1, 100, {}), 0.0); // nothing left to bring on the task's path
  p.release(2);
  p.release(1);
  EXPECT_EQ(f.log.size(), 3u); // no second restore
  auto t = p.stats();
  EXPECT_EQ(t.page_ins, 1u);
  EXPECT_EQ(t.prefetched, 1u);
  EXPECT_DOUBLE_EQ(t.prefetch_seconds, 0.25);
  EXPECT_DOUBLE_EQ(t.page_in_seconds, 0.0);
  EXPECT_EQ(t.over_budget, 0u);
}

TEST(pager, a_prefetched_session_is_held_for_its_task) {
  fake f;
  session_pager p(200);
  a_paged_out(p, f);
  p.prefetch(1); // evicts b, the least recently used
  p.drain();
  EXPECT_EQ(f.log, (std::vector<std::string>{"out a", "out b", "in a"}));
  // Another task needs room: a is held for its coming task, so c goes
  // although a is the least recently used.
  p.acquire(2, 100, {});
  EXPECT_EQ(f.log, (std::vector<std::string>{"out a", "out b", "in a", "out c", "in b"}));
  EXPECT_TRUE(p.resident(1));
  p.release(2);
  // Its task called off: no longer held, so it may go again.
  p.cancel_prefetch(1);
  p.acquire(3, 100, {});
  p.release(3);
  EXPECT_FALSE(p.resident(1));
}

TEST(pager, a_prefetch_that_would_evict_a_session_in_use_is_skipped) {
  fake f;
  session_pager p(100);
  p.acquire(1, 100, f.hooks("a"));
  p.release(1);
  p.acquire(2, 100, f.hooks("b")); // a goes; b's task runs
  p.prefetch(1);
  p.drain();
  EXPECT_FALSE(p.resident(1));
  EXPECT_EQ(p.stats().prefetch_skipped, 1u);
  EXPECT_EQ(p.stats().prefetched, 0u);
  p.release(2);
  EXPECT_EQ(p.acquire(1, 100, {}), 0.25); // its task brings it in itself
  p.release(1);
  EXPECT_EQ(p.stats().over_budget, 0u);
}

TEST(pager, prefetch_off_changes_nothing) {
  fake f;
  session_pager p(200, /*prefetch=*/false);
  a_paged_out(p, f);
  p.prefetch(1);
  p.drain();
  EXPECT_FALSE(p.resident(1));
  EXPECT_EQ(p.stats().prefetched, 0u);
  EXPECT_EQ(p.stats().prefetch_skipped, 0u);
}

TEST(pager, a_task_racing_its_prefetch_restores_once_and_waits_for_the_copy) {
  // Whichever comes first, the prefetch or the task, the session is
  // restored exactly once, and the task only starts once it is whole.
  for (int round = 0; round < 50; ++round) {
    std::mutex mu;
    int restores = 0;
    bool whole = false;
    session_pager::hooks slow{[] { return 0.0; },
                              [&] {
                                std::this_thread::sleep_for(std::chrono::milliseconds(2));
                                std::lock_guard<std::mutex> lock(mu);
                                ++restores;
                                whole = true;
                                return 0.002;
                              }};
    session_pager p(100);
    p.acquire(1, 100, slow);
    p.release(1);
    p.acquire(2, 100, {[] { return 0.0; }, [] { return 0.0; }}); // 1 goes
    p.release(2);
    whole = false;
    p.prefetch(1);
    if (round % 2 == 0)
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    p.acquire(1, 100, {});
    {
      std::lock_guard<std::mutex> lock(mu);
      EXPECT_TRUE(whole) << "round " << round;
    }
    p.release(1);
    p.drain();
    EXPECT_EQ(restores, 1) << "round " << round;
    EXPECT_EQ(p.stats().page_ins, 1u) << "round " << round;
  }
}

} // namespace
} // namespace fedsp
