// The aggregator, message by message under the test coordinator: what it
// answers, in which order, and what it holds after each message.
#define CAF_SUITE aggregator_dsl
#include "actors/aggregator.hpp"
#include "tests/actors/dsl/dsl_fixture.hpp"

using namespace fedsp;

namespace {

struct fixture : test::dsl_fixture {
  aggregator_actor agg;
  std::shared_ptr<const prompt_set> base = std::make_shared<const prompt_set>(prompts(0.f));

  fixture() {
    agg = sys.spawn(aggregator, tc.ctx, prompts(0.f), aggregator_options{});
    run();
  }

  aggregator_state& state() {
    return deref<aggregator_actor::stateful_base<aggregator_state>>(agg).state;
  }

  void open(std::uint64_t task, std::uint32_t client, std::uint64_t base_version = 0) {
    self->send(agg, open_atom::value, task_expectation{task, client, base_version, 1, base});
    expect((open_atom, task_expectation), from(self).to(agg));
  }

  /// Sends an update envelope and lets the aggregator take it.
  envelope submit(const std::string& sender, update_msg up) {
    self->send(agg, encode(envelope{sender, std::move(up)}));
    expect((wire_buffer), from(self).to(agg));
    return next();
  }

  aggregate_outcome close(std::uint32_t round) {
    aggregate_request req;
    req.round = round;
    req.current = base;
    self->send(agg, close_atom::value, req);
    expect((close_atom, aggregate_request), from(self).to(agg));
    aggregate_outcome out;
    self->receive([&](aggregate_outcome& o) { out = std::move(o); },
                  caf::after(std::chrono::seconds(0)) >> [] { CAF_FAIL("no outcome"); });
    return out;
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(aggregator_dsl, fixture)

CAF_TEST(an update is acknowledged after its event and held once; a copy changes nothing) {
  open(1, 1);
  auto ack = submit("client-1", update_msg{1, 1, 0, prompts(0.5f), 10, {}});
  CAF_REQUIRE(std::holds_alternative<ack_msg>(ack.body));
  CAF_CHECK_EQUAL(std::get<ack_msg>(ack.body).task_id, 1u);
  CAF_CHECK(quiet()); // one answer, nothing else
  CAF_CHECK_EQUAL(state().held.size(), 1u);
  CAF_CHECK_EQUAL(events_of("update").size(), 1u); // written before the Ack went out
  auto again = submit("client-1", update_msg{1, 1, 0, prompts(9.f), 10, {}});
  CAF_CHECK_EQUAL(reason_of(again), errc::duplicate);
  CAF_CHECK_EQUAL(state().held.size(), 1u);
  CAF_CHECK_EQUAL(events_of("update").size(), 1u);
  auto out = close(1);
  CAF_REQUIRE(out.has_result);
  CAF_CHECK_EQUAL(out.updates, std::vector<std::uint64_t>{1});
  // The copy's 9.0 never reached the sum: FedAvg of one update is that update.
  CAF_CHECK_EQUAL(out.prompts.tensors.at(0).data.at(0), 0.5f);
  CAF_CHECK(state().held.empty());
}

CAF_TEST(an update for a task held by another client is refused and not held) {
  open(1, 1);
  auto r = submit("client-2", update_msg{1, 2, 0, prompts(0.5f), 10, {}});
  CAF_CHECK_EQUAL(reason_of(r), errc::wrong_client);
  CAF_CHECK(state().held.empty());
  // The right client may still answer its task.
  auto ack = submit("client-1", update_msg{1, 1, 0, prompts(0.5f), 10, {}});
  CAF_CHECK(std::holds_alternative<ack_msg>(ack.body));
}

CAF_TEST(a published version makes an older base stale past the bound) {
  open(1, 1, 0);
  open(2, 2, 0);
  self->send(agg, version_atom::value, std::uint64_t{3}, std::uint32_t{1},
             staleness_fn{staleness_fn::kind::sqrt});
  expect((version_atom, std::uint64_t, std::uint32_t, staleness_fn), from(self).to(agg));
  auto r = submit("client-1", update_msg{1, 1, 0, prompts(0.5f), 10, {}});
  CAF_CHECK_EQUAL(reason_of(r), errc::task_closed);
  CAF_CHECK(std::get<reject_msg>(r.body).text.find("3 versions stale, the bound is 1")
            != std::string::npos);
  CAF_CHECK(state().held.empty());
  // Without a bound the same staleness is accepted (and weighted).
  self->send(agg, version_atom::value, std::uint64_t{3}, std::uint32_t{0},
             staleness_fn{staleness_fn::kind::sqrt});
  expect((version_atom, std::uint64_t, std::uint32_t, staleness_fn), from(self).to(agg));
  auto ack = submit("client-2", update_msg{2, 2, 0, prompts(0.5f), 10, {}});
  CAF_CHECK(std::holds_alternative<ack_msg>(ack.body));
  CAF_REQUIRE_EQUAL(state().held.size(), 1u);
  CAF_CHECK_EQUAL(state().held.front().staleness, 3u);
}

CAF_TEST(closing a round refuses its late updates) {
  open(1, 1);
  open(2, 2);
  CAF_CHECK(std::holds_alternative<ack_msg>(
    submit("client-1", update_msg{1, 1, 0, prompts(0.5f), 10, {}}).body));
  auto out = close(1);
  CAF_CHECK_EQUAL(out.updates, std::vector<std::uint64_t>{1});
  auto late = submit("client-2", update_msg{2, 2, 0, prompts(0.5f), 10, {}});
  CAF_CHECK_EQUAL(reason_of(late), errc::task_closed);
  CAF_CHECK(state().held.empty());
}

CAF_TEST_FIXTURE_SCOPE_END()
