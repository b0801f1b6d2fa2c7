// The virtual clock (runtime/timeline.hpp) and the staleness strategies
// (runtime/strategy.hpp): ordering, blocking, independence from the worker
// count, and the aggregation rules.
#include <algorithm>
#include <cmath>
#include <map>
#include <queue>

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include "runtime/fedavg.hpp"
#include "runtime/rng.hpp"
#include "runtime/strategy.hpp"
#include "runtime/timeline.hpp"

namespace fedsp {
namespace {

TEST(timeline, delivers_events_in_time_then_schedule_order) {
  timeline tl;
  tl.schedule(5, 1);
  tl.schedule(2, 2);
  tl.schedule(5, 3);
  tl.schedule(0, 4);
  std::vector<std::uint64_t> tags;
  while (auto e = tl.next())
    tags.push_back(e->tag);
  EXPECT_EQ(tags, (std::vector<std::uint64_t>{4, 2, 1, 3}));
  EXPECT_EQ(tl.now(), 5);
}

TEST(timeline, a_running_job_blocks_later_events_until_it_completes) {
  timeline tl;
  auto job = tl.expect(3, 10);
  tl.schedule(1, 1);
  tl.schedule(4, 2);
  auto first = tl.next();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->tag, 1u);
  EXPECT_TRUE(tl.blocked());
  EXPECT_FALSE(tl.next()); // the event at 4 waits for the job at 3
  EXPECT_FALSE(tl.complete(job));
  EXPECT_EQ(tl.next()->tag, 10u);
  EXPECT_EQ(tl.now(), 3);
  EXPECT_EQ(tl.next()->tag, 2u);
}

TEST(timeline, never_schedules_into_the_past_and_rejects_bad_completions) {
  timeline tl;
  tl.schedule(10, 1);
  ASSERT_TRUE(tl.next());
  tl.schedule(4, 2); // clamped to now
  EXPECT_EQ(tl.earliest().value(), 10);
  auto ev = tl.schedule(12, 3);
  EXPECT_EQ(tl.complete(ev)->code, errc::duplicate); // an event is not a job
  EXPECT_EQ(tl.complete(999)->code, errc::unknown_task);
  auto job = tl.expect(11, 4);
  EXPECT_FALSE(tl.complete(job));
  EXPECT_EQ(tl.complete(job)->code, errc::duplicate);
  EXPECT_TRUE(tl.cancel(job));
  EXPECT_FALSE(tl.cancel(job));
}

/// A federation-like workload: jobs run on `workers` threads (simulated, in
/// real time with random durations), each delivered job may schedule a
/// follow-up job or event. Returns what the clock delivered.
std::vector<std::tuple<double, std::uint64_t>> simulate(std::uint64_t seed, int workers,
                                                        std::uint64_t real_seed) {
  timeline tl;
  rng vr(seed);      // virtual durations: part of the scenario
  rng rr(real_seed); // real durations: the machine, not the scenario
  struct running {
    double real_done;
    timeline::entry_id id;
    bool operator>(const running& o) const { return real_done > o.real_done; }
  };
  std::vector<timeline::entry_id> waiting; // jobs not yet on a worker
  std::priority_queue<running, std::vector<running>, std::greater<>> busy;
  double real_now = 0;
  std::uint64_t next_tag = 0;
  auto start_job = [&](double at) {
    waiting.push_back(tl.expect(at, ++next_tag));
  };
  for (int i = 0; i < 6; ++i)
    start_job(tl.now() + 1 + static_cast<double>(uniform_below(vr, 20)));
  for (int i = 0; i < 4; ++i)
    tl.schedule(static_cast<double>(uniform_below(vr, 30)), 1000 + i);
  std::vector<std::tuple<double, std::uint64_t>> out;
  int follow_ups = 30;
  while (tl.pending() > 0) {
    while (auto e = tl.next()) {
      out.emplace_back(e->at, e->tag);
      if (e->job && follow_ups-- > 0) {
        start_job(tl.now() + static_cast<double>(uniform_below(vr, 15)));
        if (uniform_below(vr, 3) == 0)
          tl.schedule(tl.now() + static_cast<double>(uniform_below(vr, 10)), 2000 + e->tag);
      }
    }
    while (!waiting.empty() && busy.size() < static_cast<std::size_t>(workers)) {
      busy.push({real_now + uniform01(rr), waiting.front()});
      waiting.erase(waiting.begin());
    }
    if (busy.empty())
      break;
    auto done = busy.top();
    busy.pop();
    real_now = done.real_done;
    EXPECT_FALSE(tl.complete(done.id));
  }
  return out;
}

RC_GTEST_PROP(timeline_properties, delivery_is_ordered_and_independent_of_workers,
              (std::uint64_t seed, std::uint64_t real_seed)) {
  auto reference = simulate(seed, 1, 1);
  auto workers = *rc::gen::inRange(1, 9);
  auto got = simulate(seed, workers, real_seed);
  RC_ASSERT(got == reference);
  // Never out of order: times are non-decreasing.
  for (std::size_t i = 1; i < got.size(); ++i)
    RC_ASSERT(std::get<0>(got[i - 1]) <= std::get<0>(got[i]));
}

RC_GTEST_PROP(timeline_properties, a_pending_job_blocks_every_later_entry,
              (std::vector<std::uint8_t> times)) {
  RC_PRE(!times.empty());
  timeline tl;
  auto job_at = static_cast<double>(*rc::gen::inRange(0, 256));
  auto job = tl.expect(job_at, 0);
  for (std::size_t i = 0; i < times.size(); ++i)
    tl.schedule(times[i], i + 1);
  std::size_t before = 0;
  while (auto e = tl.next()) {
    RC_ASSERT(e->at <= job_at);
    ++before;
  }
  RC_ASSERT(tl.blocked());
  RC_ASSERT(!tl.complete(job));
  std::size_t after = 0;
  while (auto e = tl.next())
    ++after;
  RC_ASSERT(before + after == times.size() + 1);
}

// -- staleness -------------------------------------------------------------------------

TEST(staleness, parses_every_form_and_rejects_the_rest) {
  EXPECT_EQ(parse_staleness("constant").value().to_string(), "constant");
  EXPECT_EQ(parse_staleness("sqrt").value().to_string(), "sqrt");
  EXPECT_EQ(parse_staleness("polynomial(0.5)").value().to_string(), "polynomial(0.5)");
  EXPECT_EQ(parse_staleness("hinge(10, 4)").value().to_string(), "hinge(10, 4)");
  for (auto bad : {"", "poly(1)", "polynomial", "polynomial(-1)", "polynomial(x)", "hinge(1)",
                   "hinge(0, 1)", "sqrt(2)", "constant(", "polynomial(nan)"}) {
    auto r = parse_staleness(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_NE(r.err().text.find("polynomial(a)"), std::string::npos) << r.err().text;
  }
}

TEST(staleness, matches_the_published_formulas) {
  // FedBuff's default 1/sqrt(1 + tau); FedAsync's polynomial and hinge.
  EXPECT_DOUBLE_EQ(parse_staleness("sqrt").value()(3), 0.5);
  EXPECT_DOUBLE_EQ(parse_staleness("polynomial(1)").value()(4), 0.2);
  auto h = parse_staleness("hinge(2, 3)").value();
  EXPECT_DOUBLE_EQ(h(3), 1.0);
  EXPECT_DOUBLE_EQ(h(5), 1.0 / 5.0);
}

RC_GTEST_PROP(staleness_properties, weights_start_at_one_and_never_increase,
              (std::uint32_t tau)) {
  auto a = static_cast<double>(*rc::gen::inRange(1, 400)) / 100.0;
  auto b = static_cast<double>(*rc::gen::inRange(0, 50));
  for (auto s : {staleness_fn{staleness_fn::kind::constant},
                 staleness_fn{staleness_fn::kind::sqrt},
                 staleness_fn{staleness_fn::kind::polynomial, a},
                 staleness_fn{staleness_fn::kind::hinge, a, b}}) {
    RC_ASSERT(s(0) == 1.0);
    auto w0 = s(tau), w1 = s(static_cast<std::uint64_t>(tau) + 1);
    RC_ASSERT(w1 <= w0);
    RC_ASSERT(w1 > 0.0);
  }
}

// -- folding updates ------------------------------------------------------------------

prompt_set filled(float v, std::size_t n = 3) {
  prompt_set ps;
  ps.tensors.push_back({"prefix", {static_cast<std::uint32_t>(n)}, std::vector<float>(n, v)});
  return ps;
}

TEST(fold_buffered, equals_fedavg_for_fresh_updates) {
  auto current = filled(1);
  auto a = filled(3), b = filled(7);
  auto s = parse_staleness("sqrt").value();
  auto got = fold_buffered(current, {{1, 1, 0, &current, &a}, {2, 3, 0, &current, &b}}, s);
  ASSERT_TRUE(got);
  auto avg = fedavg({{1, 1, &a}, {2, 3, &b}}).value();
  EXPECT_EQ(got.value(), avg); // (1*3 + 3*7) / 4 = 6
  EXPECT_FLOAT_EQ(got.value().tensors[0].data[0], 6.0f);
}

TEST(fold_buffered, shrinks_stale_deltas_by_the_staleness_weight) {
  auto base = filled(0), current = filled(2), up = filled(4);
  auto s = parse_staleness("sqrt").value();
  // delta 4 from base 0, staleness 3: weight 1/2, added to the current 2.
  auto got = fold_buffered(current, {{1, 5, 3, &base, &up}}, s);
  EXPECT_FLOAT_EQ(got.value().tensors[0].data[1], 4.0f);
  auto bad = filled(1, 4);
  EXPECT_EQ(fold_buffered(current, {{1, 5, 0, &current, &bad}}, s).err().code,
            errc::shape_mismatch);
  EXPECT_EQ(fold_buffered(current, {}, s).err().code, errc::empty_input);
  EXPECT_EQ(fold_buffered(current, {{1, 0, 0, &current, &up}}, s).err().code,
            errc::bad_argument);
}

TEST(mix_async, mixes_with_alpha_times_staleness) {
  auto current = filled(0), up = filled(8);
  auto s = parse_staleness("polynomial(1)").value();
  auto got = mix_async(current, {1, 1, 1, &current, &up}, s, 0.5); // a = 0.5 * 1/2
  EXPECT_FLOAT_EQ(got.value().tensors[0].data[2], 2.0f);
  EXPECT_EQ(mix_async(current, {1, 1, 0, &current, &up}, s, 1.5).err().code, errc::bad_argument);
}

} // namespace
} // namespace fedsp

namespace fedsp {
namespace {

RC_GTEST_PROP(fold_properties, streaming_accumulation_equals_the_batch_fold, ()) {
  auto n = *rc::gen::inRange<std::size_t>(1, 8);
  auto len = *rc::gen::inRange<std::uint32_t>(1, 50);
  auto gen_set = [&] {
    prompt_set ps;
    ps.tensors.push_back({"a", {len}, *rc::gen::container<std::vector<float>>(
                                         len, rc::gen::map(rc::gen::inRange(-1000, 1000),
                                                           [](int v) { return v / 100.f; }))});
    return ps;
  };
  auto current = gen_set();
  std::vector<prompt_set> ups, bases;
  for (std::size_t i = 0; i < n; ++i) {
    ups.push_back(gen_set());
    bases.push_back(gen_set());
  }
  std::vector<stale_update> in;
  fold_accumulator acc;
  auto s = parse_staleness("polynomial(0.5)").value();
  for (std::size_t i = 0; i < n; ++i) {
    in.push_back({i + 1, static_cast<double>(*rc::gen::inRange(1, 100)),
                  *rc::gen::inRange<std::uint64_t>(0, 6), &bases[i], &ups[i]});
    RC_ASSERT(!acc.add(in.back(), s));
  }
  auto batch = fold_buffered(current, in, s, 0.7).value();
  auto stream = acc.apply(current, 0.7).value();
  for (std::size_t i = 0; i < len; ++i)
    RC_ASSERT(std::abs(batch.tensors[0].data[i] - stream.tensors[0].data[i])
              <= 1e-4f * (1.f + std::abs(batch.tensors[0].data[i])));
  // A refused update leaves the sum as it was.
  prompt_set wrong;
  wrong.tensors.push_back({"a", {len + 1}, std::vector<float>(len + 1, 1.f)});
  RC_ASSERT(acc.add({99, 1, 0, &wrong, &wrong}, s).has_value());
  RC_ASSERT(acc.count() == n);
}

} // namespace
} // namespace fedsp
