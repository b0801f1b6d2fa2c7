// Properties of the aggregator over generated streams of tasks, updates
// (good, duplicate, stale, for closed rounds) and aggregations: every
// accepted update is folded into exactly one aggregate or is still held at
// the end, and the staleness bound is enforced.
#include <map>
#include <set>

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <unistd.h>

#include "actors/aggregator.hpp"
#include "runtime/rng.hpp"
#include "tests/actors/actor_test_util.hpp"

namespace fedsp {
namespace {

struct config : caf::actor_system_config {
  config() { add_message_type<wire_buffer>("fedsp::wire_buffer"); }
};

prompt_set filled(float v) {
  prompt_set ps;
  ps.tensors.push_back({"p", {3}, std::vector<float>(3, v)});
  return ps;
}

RC_GTEST_PROP(aggregator_properties, accepted_updates_are_folded_exactly_once_or_held,
              ()) {
  test::test_context tc{"fedsp_agg_prop_" + std::to_string(::getpid())};
  config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor server{sys};
  auto agg = sys.spawn(aggregator, tc.ctx, filled(0), aggregator_options{});
  auto bound = *rc::gen::inRange<std::uint32_t>(0, 4); // 0: no bound
  auto strategy = *rc::gen::element<std::string>("fedavg", "fedbuff", "fedasync");
  bool sync = strategy == "fedavg";
  auto close_rounds = *rc::gen::arbitrary<bool>();
  std::uint64_t version = 0, next_task = 0;
  std::uint32_t round = 1;
  std::map<std::uint64_t, std::uint64_t> base_of; // task -> base version
  std::map<std::uint64_t, std::uint32_t> round_of; // task -> round (sync)
  std::set<std::uint64_t> closed;                  // tasks of closed rounds
  std::set<std::uint64_t> accepted, folded;
  std::size_t discarded = 0, held = 0;
  auto base = std::make_shared<const prompt_set>(filled(0));
  server->send(agg, version_atom::value, version, bound, parse_staleness("sqrt").value());
  // The stream is drawn from one generated seed (RapidCheck's ranges are
  // scaled by test size and would make early streams trivial).
  rng r(*rc::gen::arbitrary<std::uint64_t>());
  auto steps = 20 + static_cast<int>(uniform_below(r, 40));
  for (int i = 0; i < steps; ++i) {
    auto op = uniform_below(r, 6); // open 2/6, update 3/6, aggregate 1/6
    if (op <= 1 || base_of.empty()) { // open a task on the current version
      auto id = ++next_task;
      base_of[id] = version;
      round_of[id] = sync ? round : 0u;
      server->send(agg, open_atom::value,
                   task_expectation{id, static_cast<std::uint32_t>(id), version,
                                    sync ? round : 0u, base, strategy == "fedasync"});
      continue;
    }
    if (op <= 4) { // an update for a recent task (maybe again, maybe closed)
      auto back = std::min<std::size_t>(base_of.size(), 6);
      auto it = base_of.end();
      std::advance(it, -static_cast<std::ptrdiff_t>(1 + uniform_below(r, back)));
      auto id = it->first;
      update_msg up{id, static_cast<std::uint32_t>(id), it->second, filled(1.f + id), 5, {}};
      bool ack = false;
      server->request(agg, caf::infinite, encode(envelope{client_name(up.client_id), up}))
        .receive([&](const wire_buffer& r) {
                   auto env = decode(r);
                   ack = env && std::holds_alternative<ack_msg>(env.value().body);
                 },
                 [&](caf::error&) {});
      // The model of the rules: an open task's first update within the
      // staleness bound is accepted; anything else is refused.
      bool expect = closed.count(id) == 0 && accepted.count(id) == 0
                    && (bound == 0 || version - it->second <= bound);
      RC_ASSERT(ack == expect);
      if (ack)
        accepted.insert(id);
      continue;
    }
    // aggregate (and publish a version if something was folded)
    aggregate_request req;
    req.round = sync ? round : 0;
    req.close_round = close_rounds;
    req.min_updates = static_cast<std::uint32_t>(1 + uniform_below(r, 3));
    req.version = version;
    req.current = std::make_shared<const prompt_set>(filled(0));
    req.strategy = strategy;
    req.staleness = parse_staleness("sqrt").value();
    aggregate_outcome out;
    server->request(agg, caf::infinite, close_atom::value, req)
      .receive([&](aggregate_outcome& o) { out = std::move(o); }, [&](caf::error&) {});
    for (auto id : out.updates) {
      RC_ASSERT(accepted.count(id) == 1u);
      RC_ASSERT(folded.insert(id).second); // folded once
    }
    discarded += out.discarded;
      held = out.held;
    if (out.has_result) {
      ++version;
      server->send(agg, version_atom::value, version, bound, parse_staleness("sqrt").value());
    }
    if (sync && close_rounds)
      for (auto& [id, rd] : round_of)
        if (rd == round)
          closed.insert(id);
    if (sync)
      ++round;
    // Every accepted update is folded, dropped with a failed round, or held.
    RC_ASSERT(folded.size() + discarded + held == accepted.size());
  }
  RC_CLASSIFY(!folded.empty(), "folded some");
  RC_CLASSIFY(discarded > 0, "discarded some");
  RC_CLASSIFY(held > 0, "held some at the end");
  server->send_exit(agg, caf::exit_reason::user_shutdown);
}

} // namespace
} // namespace fedsp
