// The server's client registry on its own: who is picked for a round or a
// slot, who is left out and why, and which node may speak for which id.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include <caf/io/middleman.hpp>

#include "actors/client_registry.hpp"

namespace fedsp {
namespace {

scenario make(const std::string& extra = "") {
  auto sc = parse_scenario(R"(
seed: 11
model:
  kind: mlp
method:
  name: fedprompt
clients:
  count: 6
  speed: uniform(0.5, 2)
)" + extra,
                           "registry_test.yaml");
  EXPECT_TRUE(sc) << (sc ? "" : sc.err().text);
  return sc.value();
}

client_registry joined(const scenario& sc, std::uint32_t n) {
  client_registry r(sc, n);
  for (std::uint32_t id = 0; id < n; ++id)
    r.join(id, client_actor{}, 100 + id);
  return r;
}

TEST(client_registry, profiles_are_drawn_per_id_from_the_seed_and_kept_on_rejoin) {
  auto sc = make();
  auto a = joined(sc, 6);
  auto b = joined(sc, 6);
  std::set<double> speeds;
  for (std::uint32_t id = 0; id < 6; ++id) {
    EXPECT_EQ(a.find(id)->profile.speed, b.find(id)->profile.speed); // same seed, same draw
    EXPECT_GE(a.find(id)->profile.speed, 0.5);
    EXPECT_LE(a.find(id)->profile.speed, 2.0);
    speeds.insert(a.find(id)->profile.speed);
  }
  EXPECT_EQ(speeds.size(), 6u); // drawn per client, not one for all
  auto before = a.find(3)->profile.speed;
  a.join(3, client_actor{}, 7); // a rejoin: new sample count, same device
  EXPECT_EQ(a.find(3)->profile.speed, before);
  EXPECT_EQ(a.find(3)->num_samples, 7u);
  EXPECT_EQ(a.size(), 6u);
  // An id beyond the scenario's clients gets the reference device.
  EXPECT_EQ(a.join(40, client_actor{}, 1).profile.speed, 1.0);
}

TEST(client_registry, a_round_picks_only_idle_online_clients_and_counts_the_others) {
  auto sc = make();
  auto r = joined(sc, 6);
  r.set_busy(1, true);
  r.set_busy(4, true);
  auto p = r.pick_round(sc, 0.0, 1, 10);
  EXPECT_EQ(p.ids, (std::vector<std::uint32_t>{0, 2, 3, 5}));
  EXPECT_EQ(p.busy, 2u);
  EXPECT_EQ(p.offline, 0u);
  // Cut to `want`, in id order, and the same cut for the same round.
  auto q = r.pick_round(sc, 0.0, 1, 2);
  ASSERT_EQ(q.ids.size(), 2u);
  EXPECT_LT(q.ids[0], q.ids[1]);
  EXPECT_EQ(q.ids, r.pick_round(sc, 0.0, 1, 2).ids);
  // Different rounds draw different subsets (over 20 rounds, more than one).
  std::set<std::vector<std::uint32_t>> seen;
  for (std::uint32_t round = 1; round <= 20; ++round)
    seen.insert(r.pick_round(sc, 0.0, round, 2).ids);
  EXPECT_GT(seen.size(), 1u);
}

TEST(client_registry, offline_clients_are_not_picked) {
  auto sc = make("  availability: probability(0.5)\n");
  auto r = joined(sc, 6);
  std::uint32_t offline = 0;
  for (std::uint32_t round = 1; round <= 20; ++round) {
    auto p = r.pick_round(sc, 0.0, round, 10);
    EXPECT_EQ(p.ids.size() + p.offline, 6u);
    for (auto id : p.ids)
      EXPECT_TRUE(sc.clients.online.online(id, 0.0, round, sc.seed));
    offline += p.offline;
  }
  EXPECT_GT(offline, 20u); // about half of 120
  EXPECT_LT(offline, 100u);
}

TEST(client_registry, an_async_slot_takes_an_idle_client_or_none) {
  auto sc = make();
  auto r = joined(sc, 3);
  r.set_busy(0, true);
  r.set_busy(2, true);
  EXPECT_EQ(r.pick_one(sc, 0.0, 1), std::optional<std::uint32_t>(1));
  r.set_busy(1, true);
  EXPECT_EQ(r.pick_one(sc, 0.0, 2), std::nullopt);
  r.set_busy(9, true); // an unknown id: nothing happens
  EXPECT_EQ(r.size(), 3u);
}

TEST(client_registry, an_async_slot_draws_every_idle_online_client_equally_whatever_the_join_order) {
  auto sc = make("  availability: probability(0.5)\n");
  auto a = joined(sc, 10);
  client_registry b(sc, 10); // the same clients, joined and made busy in another order
  for (std::uint32_t id = 10; id-- > 0;)
    b.join(id, client_actor{}, 100 + id);
  for (std::uint32_t id : {2u, 5u, 8u})
    a.set_busy(id, true);
  for (std::uint32_t id : {8u, 2u, 5u})
    b.set_busy(id, true);
  b.set_busy(4, true); // busy and idle again: back in the draw
  b.set_busy(4, false);
  std::map<std::uint32_t, int> count;
  int none = 0;
  const int draws = 14'000;
  for (std::uint64_t d = 1; d <= draws; ++d) {
    auto pick = a.pick_one(sc, 0.0, d);
    ASSERT_EQ(pick, b.pick_one(sc, 0.0, d)) << "draw " << d;
    if (!pick) { // only when every idle client is offline for this draw
      for (std::uint32_t id : {0u, 1u, 3u, 4u, 6u, 7u, 9u})
        EXPECT_FALSE(sc.clients.online.online(id, 0.0, d, sc.seed)) << id;
      ++none;
      continue;
    }
    EXPECT_FALSE(a.find(*pick)->busy);
    EXPECT_TRUE(sc.clients.online.online(*pick, 0.0, d, sc.seed));
    ++count[*pick];
  }
  // Seven idle clients, each online with probability 1/2 per draw: nobody
  // with probability 1/128 (about 109 draws), else each of the seven alike,
  // about 1,984 picks with a standard deviation of 41: 1,700-2,300 is
  // seven deviations wide.
  EXPECT_EQ(count.size(), 7u);
  for (auto [id, n] : count) {
    EXPECT_GT(n, 1700) << id;
    EXPECT_LT(n, 2300) << id;
  }
  EXPECT_GT(none, 40);
  EXPECT_LT(none, 200);
}

TEST(client_registry, join_nodes_bind_ids_and_other_nodes_may_not_speak_for_them) {
  auto sc = make();
  client_registry r(sc, 4);
  caf::strong_actor_ptr none;
  EXPECT_EQ(r.bind(0, 1, none, 4), "no node to bind to");
  EXPECT_NE(r.bind(2, 4, none, 4).find("not ids of this run (0-3)"), std::string::npos);
  EXPECT_NE(r.bind(3, 2, none, 4).find("not ids of this run"), std::string::npos);
  // Without join nodes anyone speaks for any id; with them, nobody unbound.
  EXPECT_TRUE(r.speaks_from(0, none, false));
  EXPECT_FALSE(r.speaks_from(0, none, true));
  // Two actor systems with a middleman (which names the node) stand for two nodes.
  caf::actor_system_config ca, cb;
  ca.load<caf::io::middleman>();
  cb.load<caf::io::middleman>();
  caf::actor_system a{ca}, b{cb};
  ASSERT_NE(a.node(), b.node());
  auto on_a = caf::actor_cast<caf::strong_actor_ptr>(a.spawn([] {}));
  auto on_b = caf::actor_cast<caf::strong_actor_ptr>(b.spawn([] {}));
  EXPECT_EQ(r.bind(0, 1, on_a, 4), "");
  EXPECT_TRUE(r.speaks_from(1, on_a, true));
  EXPECT_FALSE(r.speaks_from(1, on_b, true));
  EXPECT_FALSE(r.speaks_from(2, on_a, true)); // not bound at all
  // Node b may take ids 0-1 over while none of their clients is joined ...
  EXPECT_EQ(r.bind(0, 1, on_b, 4), "");
  EXPECT_TRUE(r.speaks_from(0, on_b, true));
  // ... but not while one is: then nothing is bound (2 stays free).
  r.join(1, client_actor{}, 5);
  EXPECT_EQ(r.bind(1, 2, on_a, 4), "client-1 is held by another node whose clients are still joined");
  EXPECT_FALSE(r.speaks_from(2, on_a, true));
  EXPECT_TRUE(r.speaks_from(1, on_b, true));
}

} // namespace
} // namespace fedsp
