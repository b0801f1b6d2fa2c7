// The aggregator against a scripted server and clients: every bad update gets
// a typed Reject and leaves the accepted state untouched.
#include <cmath>

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "actors/aggregator.hpp"
#include "tests/actors/actor_test_util.hpp"

namespace fedsp {
namespace {

class aggregator_test : public ::testing::Test {
protected:
  struct config : caf::actor_system_config {
    config() { add_message_type<wire_buffer>("fedsp::wire_buffer"); }
  };

  test::test_context tc{"fedsp_aggregator_test_" + std::to_string(::getpid())};
  config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor server{sys}; // stands in for the server: gets notifications
  prompt_set layout = layout_of({2, 3});
  std::shared_ptr<const prompt_set> base = std::make_shared<const prompt_set>(prompts(0.f));
  aggregator_actor agg;

  static prompt_set layout_of(std::vector<std::uint32_t> shape) {
    tensor_buffer t{"prefix", std::move(shape), {}};
    return prompt_set{0, {t}};
  }

  static prompt_set prompts(float v, std::vector<std::uint32_t> shape = {2, 3}) {
    tensor_buffer t{"prefix", std::move(shape), {}};
    t.data.assign(t.numel(), v);
    return prompt_set{0, {t}};
  }

  void SetUp() override {
    agg = sys.spawn(aggregator, tc.ctx, layout, aggregator_options{});
    server->send(agg, open_atom::value, task_expectation{1, 1, 0, 1, base});
    server->send(agg, open_atom::value, task_expectation{2, 2, 0, 1, base});
  }

  void TearDown() override { server->send_exit(agg, caf::exit_reason::user_shutdown); }

  /// Sends an envelope to the aggregator and returns its decoded reply.
  envelope submit(const wire_buffer& buf) {
    envelope reply;
    server->request(agg, caf::infinite, buf)
      .receive([&](const wire_buffer& r) { reply = decode(r).value(); },
               [&](caf::error& err) { ADD_FAILURE() << sys.render(err); });
    return reply;
  }

  envelope submit(const std::string& sender, update_msg up) {
    return submit(encode(envelope{sender, std::move(up)}));
  }

  static errc reason(const envelope& e) {
    auto* r = std::get_if<reject_msg>(&e.body);
    return r ? r->reason : errc::unknown;
  }

  aggregate_outcome close(std::uint32_t round, std::uint32_t min,
                          std::shared_ptr<const prompt_set> current = nullptr) {
    aggregate_outcome out;
    aggregate_request req;
    req.round = round;
    req.min_updates = min;
    req.current = current ? current : base;
    server->request(agg, caf::infinite, close_atom::value, req)
      .receive([&](aggregate_outcome& o) { out = std::move(o); },
               [&](caf::error& err) { ADD_FAILURE() << sys.render(err); });
    return out;
  }
};

TEST_F(aggregator_test, valid_update_is_acknowledged_and_folded_once) {
  auto reply = submit("client-1", update_msg{1, 1, 0, prompts(0.5f), 10, {}});
  ASSERT_TRUE(std::holds_alternative<ack_msg>(reply.body)) << describe(reply);
  EXPECT_EQ(std::get<ack_msg>(reply.body).task_id, 1u);
  auto out = close(1, 1);
  ASSERT_TRUE(out.has_result) << out.note;
  EXPECT_EQ(out.updates, (std::vector<std::uint64_t>{1}));
  EXPECT_EQ(out.held, 0u);
  // Folded once: a second aggregation has nothing left.
  EXPECT_FALSE(close(2, 1).has_result);
}

TEST_F(aggregator_test, stale_updates_are_weighted_and_the_bound_is_enforced) {
  // Task 1 was based on version 0; the server has since published version 3.
  server->send(agg, version_atom::value, std::uint64_t{3}, std::uint32_t{5}, parse_staleness("sqrt").value());
  ASSERT_TRUE(std::holds_alternative<ack_msg>(
    submit("client-1", update_msg{1, 1, 0, prompts(4.f), 10, {}}).body));
  aggregate_request req;
  req.version = 3;
  req.current = std::make_shared<const prompt_set>(prompts(2.f));
  req.strategy = "fedbuff";
  req.staleness = parse_staleness("sqrt").value();
  aggregate_outcome out;
  server->request(agg, caf::infinite, close_atom::value, req)
    .receive([&](aggregate_outcome& o) { out = std::move(o); },
             [&](caf::error& err) { ADD_FAILURE() << sys.render(err); });
  ASSERT_TRUE(out.has_result) << out.note;
  EXPECT_EQ(out.staleness, (std::vector<std::uint64_t>{3}));
  // 2 + (4 - 0) / sqrt(1 + 3)
  EXPECT_FLOAT_EQ(out.prompts.tensors[0].data[0], 4.0f);
  // With a bound of 2, an update 3 versions stale is refused.
  server->send(agg, version_atom::value, std::uint64_t{3}, std::uint32_t{2}, parse_staleness("sqrt").value());
  EXPECT_EQ(reason(submit("client-2", update_msg{2, 2, 0, prompts(4.f), 10, {}})),
            errc::task_closed);
}

TEST_F(aggregator_test, bad_updates_get_typed_rejects_and_change_nothing) {
  // One good update first: it must survive everything that follows.
  ASSERT_TRUE(std::holds_alternative<ack_msg>(
    submit("client-1", update_msg{1, 1, 0, prompts(1.0f), 10, {}}).body));

  wire_buffer garbage{{0x1234, 0xffffffffffffffffull, 3}};
  EXPECT_EQ(reason(submit(garbage)), errc::malformed);
  EXPECT_EQ(reason(submit("client-1", update_msg{1, 1, 0, prompts(9.f), 10, {}})),
            errc::duplicate);
  EXPECT_EQ(reason(submit("client-1", update_msg{2, 1, 0, prompts(9.f), 10, {}})),
            errc::wrong_client); // task 2 is client 2's
  EXPECT_EQ(reason(submit("client-1", update_msg{2, 2, 0, prompts(9.f), 10, {}})),
            errc::wrong_client); // claims client 2's identity from client-1
  EXPECT_EQ(reason(submit("client-2", update_msg{99, 2, 0, prompts(9.f), 10, {}})),
            errc::unknown_task);
  EXPECT_EQ(reason(submit("client-2", update_msg{2, 2, 5, prompts(9.f), 10, {}})),
            errc::future_version);
  EXPECT_EQ(reason(submit("client-2", update_msg{2, 2, 0, prompts(9.f, {3, 2}), 10, {}})),
            errc::shape_mismatch);
  auto nan = prompts(9.f);
  nan.tensors[0].data[4] = NAN;
  EXPECT_EQ(reason(submit("client-2", update_msg{2, 2, 0, nan, 10, {}})),
            errc::non_finite);
  EXPECT_EQ(reason(submit(encode(envelope{"client-2", heartbeat_msg{1.0, {}}}))),
            errc::unsupported);

  auto out = close(1, 1);
  ASSERT_TRUE(out.has_result) << out.note;
  EXPECT_EQ(out.updates, (std::vector<std::uint64_t>{1}));
  EXPECT_EQ(out.prompts.tensors[0].data, prompts(1.0f).tensors[0].data);
  // After the close, the round's other task is closed for good.
  EXPECT_EQ(reason(submit("client-2", update_msg{2, 2, 0, prompts(2.f), 10, {}})),
            errc::task_closed);

  // Each rejection is an event naming its reason.
  tc.events->flush();
  auto events = test::read_jsonl(tc.dir / "events.jsonl");
  int rejects = 0;
  for (auto& e : events)
    rejects += e.find("type")->as_string() == "reject";
  EXPECT_EQ(rejects, 10);
}

TEST_F(aggregator_test, an_update_far_larger_than_its_base_is_refused_as_an_outlier) {
  // A base of ones (norm sqrt(6)) and federation.max_update_ratio 1000: an
  // update of norm 500 sqrt(6) counts; one with an element of 1e30, a
  // finite number the decoder lets through (a flipped exponent bit), is
  // refused and changes nothing.
  auto ones = std::make_shared<const prompt_set>(prompts(1.f));
  auto spawn_with = [&](double ratio) {
    aggregator_options o;
    o.max_update_ratio = ratio;
    auto a = sys.spawn(aggregator, tc.ctx, layout, o);
    server->send(a, open_atom::value, task_expectation{1, 1, 0, 1, ones});
    server->send(a, open_atom::value, task_expectation{2, 2, 0, 1, ones});
    return a;
  };
  auto huge = prompts(1.f);
  huge.tensors[0].data[3] = 1e30f;
  server->send_exit(agg, caf::exit_reason::user_shutdown);
  agg = spawn_with(1000);
  ASSERT_TRUE(std::holds_alternative<ack_msg>(
    submit("client-1", update_msg{1, 1, 0, prompts(500.f), 10, {}}).body));
  auto reply = submit("client-2", update_msg{2, 2, 0, huge, 10, {}});
  ASSERT_EQ(reason(reply), errc::outlier) << describe(reply);
  EXPECT_NE(std::get<reject_msg>(reply.body).text.find("federation.max_update_ratio"),
            std::string::npos);
  EXPECT_EQ(std::get<reject_msg>(reply.body).task_id, 2u); // the client's task is over
  auto out = close(1, 1, ones);
  ASSERT_TRUE(out.has_result) << out.note;
  EXPECT_EQ(out.updates, (std::vector<std::uint64_t>{1}));
  EXPECT_EQ(out.prompts.tensors[0].data, prompts(500.f).tensors[0].data);
  // With the bound off (0), the same update is folded.
  server->send_exit(agg, caf::exit_reason::user_shutdown);
  agg = spawn_with(0);
  EXPECT_TRUE(std::holds_alternative<ack_msg>(
    submit("client-2", update_msg{2, 2, 0, huge, 10, {}}).body));
}

TEST_F(aggregator_test, each_update_is_judged_against_its_own_base_when_bases_interleave) {
  // Async updates of several stale versions interleave. Ten bases of
  // values 1 ... 10, the bound 2 times the base's norm, two passes over
  // them (more bases than the aggregator keeps norms for): an update of
  // 1.5 times its base's value is folded, one of 2.5 times is refused.
  // Judged against another base's norm, some of these answers would flip.
  server->send_exit(agg, caf::exit_reason::user_shutdown);
  aggregator_options o;
  o.max_update_ratio = 2;
  agg = sys.spawn(aggregator, tc.ctx, layout, o);
  std::vector<std::shared_ptr<const prompt_set>> bases;
  for (int k = 1; k <= 10; ++k)
    bases.push_back(std::make_shared<const prompt_set>(prompts(static_cast<float>(k))));
  std::uint64_t task = 0;
  for (int pass = 0; pass < 2; ++pass)
    for (int k = 1; k <= 10; ++k) {
      bool big = (k + pass) % 2 == 0;
      ++task;
      auto client = static_cast<std::uint32_t>(task);
      server->send(agg, open_atom::value,
                   task_expectation{task, client, static_cast<std::uint64_t>(k), 0,
                                    bases[k - 1]});
      auto reply = submit("client-" + std::to_string(client),
                          update_msg{task, client, static_cast<std::uint64_t>(k),
                                     prompts((big ? 2.5f : 1.5f) * static_cast<float>(k)), 10,
                                     {}});
      if (big)
        EXPECT_EQ(reason(reply), errc::outlier) << "base " << k << ": " << describe(reply);
      else
        EXPECT_TRUE(std::holds_alternative<ack_msg>(reply.body))
          << "base " << k << ": " << describe(reply);
    }
}

TEST_F(aggregator_test, fedavg_weights_updates_by_their_sample_counts) {
  submit("client-1", update_msg{1, 1, 0, prompts(0.f), 30, {}});
  submit("client-2", update_msg{2, 2, 0, prompts(4.f), 10, {}});
  auto out = close(1, 2);
  ASSERT_TRUE(out.has_result);
  EXPECT_FLOAT_EQ(out.prompts.tensors[0].data[0], 1.0f); // (30*0 + 10*4) / 40
  EXPECT_EQ(out.updates, (std::vector<std::uint64_t>{1, 2}));
}

TEST_F(aggregator_test, a_round_short_of_its_quorum_yields_no_aggregate) {
  submit("client-1", update_msg{1, 1, 0, prompts(0.f), 30, {}});
  auto out = close(1, 2);
  EXPECT_FALSE(out.has_result);
  EXPECT_TRUE(out.updates.empty());
  EXPECT_NE(out.note.find("2 needed"), std::string::npos) << out.note;
}

} // namespace
} // namespace fedsp

namespace fedsp {
namespace {

// The write-ahead log: what a killed aggregator had acknowledged, a new one
// replaying the log folds exactly as the old one would have, bit for bit.
class aggregator_wal_test : public ::testing::Test {
protected:
  struct config : caf::actor_system_config {
    config() { add_message_type<wire_buffer>("fedsp::wire_buffer"); }
  };
  test::test_context tc{"fedsp_aggregator_wal_" + std::to_string(::getpid())};
  config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  std::string wal = (tc.dir / "wal").string();

  static prompt_set filled(float v, float step) {
    tensor_buffer t{"prefix", {2, 3}, {}};
    for (int i = 0; i < 6; ++i)
      t.data.push_back(v + step * static_cast<float>(i));
    return prompt_set{0, {t}};
  }

  aggregator_actor spawn(std::vector<std::string> replay) {
    aggregator_options o;
    o.wal_dir = wal;
    o.staleness = parse_staleness("sqrt").value();
    o.replay = std::move(replay);
    auto a = sys.spawn(aggregator, tc.ctx, filled(0, 0), std::move(o));
    self->send(a, version_atom::value, std::uint64_t{2}, std::uint32_t{0}, parse_staleness("sqrt").value());
    return a;
  }

  // One base for every task, as the server shares a version's prompts.
  std::shared_ptr<const prompt_set> base = std::make_shared<const prompt_set>(filled(1.f, 0.5f));

  void accept(aggregator_actor a, std::uint64_t task, float v, bool keep) {
    self->send(a, open_atom::value, task_expectation{task, 7, 1, 0, base, keep});
    self->request(a, caf::infinite,
                  encode(envelope{"client-7", update_msg{task, 7, 1, filled(v, -0.25f), 10 + task, {}}}))
      .receive([&](const wire_buffer& r) {
                 EXPECT_TRUE(std::holds_alternative<ack_msg>(decode(r).value().body));
               },
               [&](caf::error& err) { ADD_FAILURE() << sys.render(err); });
  }

  aggregate_outcome close(aggregator_actor a, const std::string& strategy) {
    aggregate_request req;
    req.version = 2;
    req.current = std::make_shared<const prompt_set>(filled(3.f, 0.1f));
    req.strategy = strategy;
    req.staleness = parse_staleness("sqrt").value();
    aggregate_outcome out;
    self->request(a, caf::infinite, close_atom::value, req)
      .receive([&](aggregate_outcome& o) { out = std::move(o); },
               [&](caf::error& err) { ADD_FAILURE() << sys.render(err); });
    return out;
  }
};

TEST_F(aggregator_wal_test, a_replayed_log_folds_what_the_dead_aggregator_acknowledged) {
  for (auto strategy : {"fedbuff", "fedasync"}) {
    std::filesystem::remove_all(wal);
    bool keep = std::string(strategy) == "fedasync";
    // The reference: no crash.
    auto ref = spawn({});
    for (std::uint64_t t = 1; t <= 3; ++t)
      accept(ref, t, static_cast<float>(t), keep);
    auto want = close(ref, strategy);
    self->send_exit(ref, caf::exit_reason::user_shutdown);
    std::filesystem::remove_all(wal);
    // Three updates acknowledged, then the aggregator is killed.
    auto dead = spawn({});
    for (std::uint64_t t = 1; t <= 3; ++t)
      accept(dead, t, static_cast<float>(t), keep);
    self->send_exit(dead, caf::exit_reason::kill);
    auto log = read_log(wal, 0).value();
    std::size_t updates = 0, bases = 0;
    for (auto& rec : log.records) {
      auto e = parse_wal_record(rec);
      ASSERT_TRUE(e.ok()) << e.err().text;
      updates += std::holds_alternative<wal_update>(e.value());
      bases += std::holds_alternative<wal_base>(e.value());
    }
    EXPECT_EQ(updates, 3u) << strategy;
    EXPECT_EQ(bases, 1u) << strategy; // one base, logged once
    auto back = spawn(log.records);
    auto got = close(back, strategy);
    ASSERT_TRUE(got.has_result) << strategy << ": " << got.note;
    EXPECT_EQ(got.updates, want.updates) << strategy;
    // The same arithmetic on the same inputs: the same floats.
    EXPECT_EQ(got.prompts.tensors[0].data, want.prompts.tensors[0].data) << strategy;
    // The fold consumed the log: nothing is replayed twice.
    EXPECT_GT(got.wal_consumed, 0u);
    EXPECT_TRUE(read_log(wal, got.wal_consumed).value().records.empty());
    self->send_exit(back, caf::exit_reason::user_shutdown);
  }
}

TEST_F(aggregator_wal_test, an_unwritable_log_refuses_the_update_and_keeps_nothing) {
  auto a = spawn({});
  accept(a, 1, 2.f, false);
  // The log folder is replaced by a file: the next segment cannot be opened.
  std::filesystem::remove_all(wal);
  { std::ofstream block(wal); }
  auto out = close(a, "fedbuff");
  EXPECT_TRUE(out.has_result); // what was logged is folded
  self->send(a, open_atom::value, task_expectation{2, 7, 1, 0, base, false});
  envelope reply;
  self->request(a, caf::infinite,
                encode(envelope{"client-7", update_msg{2, 7, 1, filled(2.f, 0.f), 10, {}}}))
    .receive([&](const wire_buffer& r) { reply = decode(r).value(); },
             [&](caf::error& err) { ADD_FAILURE() << sys.render(err); });
  auto* r = std::get_if<reject_msg>(&reply.body);
  ASSERT_NE(r, nullptr) << "an update that cannot be logged must not be acknowledged";
  EXPECT_NE(r->text.find("no open segment"), std::string::npos) << r->text;
  EXPECT_FALSE(close(a, "fedbuff").has_result); // nothing was kept
  self->send_exit(a, caf::exit_reason::user_shutdown);
}

} // namespace
} // namespace fedsp
