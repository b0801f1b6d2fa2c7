// The aggregator against a scripted server and clients: every bad update gets
// a typed Reject and leaves the accepted state untouched.
#include <cmath>

#include <gtest/gtest.h>
#include <unistd.h>

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
    agg = sys.spawn(aggregator, tc.ctx, layout);
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

  aggregate_outcome close(std::uint32_t round, std::uint32_t min) {
    aggregate_outcome out;
    aggregate_request req;
    req.round = round;
    req.min_updates = min;
    req.current = *base;
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
  req.current = prompts(2.f);
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
  EXPECT_EQ(reason(submit(encode(envelope{"client-2", heartbeat_msg{1.0}}))),
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
