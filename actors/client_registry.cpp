#include "actors/client_registry.hpp"

#include <algorithm>

#include "runtime/rng.hpp"

namespace fedsp {

client_registry::client_registry(const scenario& sc, std::uint32_t n) {
  auto speeds = sc.clients.speed_dist.sample(n, mix_seed(sc.seed, 21));
  auto latency = sc.clients.latency_dist.sample(n, mix_seed(sc.seed, 22));
  auto mbps = sc.clients.bandwidth_dist.sample(n, mix_seed(sc.seed, 23));
  for (std::uint32_t i = 0; i < n; ++i)
    profiles_.push_back(client_profile{speeds[i], latency[i], mbps[i] * 1e6 / 8});
}

client_registry::entry& client_registry::join(std::uint32_t id, client_actor handle,
                                              std::uint64_t num_samples) {
  auto [it, fresh] = clients_.try_emplace(id);
  auto& c = it->second;
  if (fresh)
    idle_.insert(id);
  c.handle = std::move(handle);
  c.num_samples = num_samples;
  c.profile = id < profiles_.size() ? profiles_[id] : client_profile{};
  return c;
}

client_registry::entry* client_registry::find(std::uint32_t id) {
  auto it = clients_.find(id);
  return it == clients_.end() ? nullptr : &it->second;
}

std::optional<std::uint32_t> client_registry::leave(const caf::actor_addr& who) {
  for (auto it = clients_.begin(); it != clients_.end(); ++it)
    if (it->second.handle.address() == who) {
      auto id = it->first;
      clients_.erase(it);
      idle_.erase(id);
      return id;
    }
  return std::nullopt;
}

void client_registry::set_busy(std::uint32_t id, bool busy) {
  auto* c = find(id);
  if (c == nullptr)
    return;
  c->busy = busy;
  if (busy)
    idle_.erase(id);
  else
    idle_.insert(id);
}

std::string client_registry::bind(std::uint32_t first, std::uint32_t last,
                                  const caf::strong_actor_ptr& sender, std::uint32_t expected) {
  if (first > last || last >= expected)
    return "clients " + std::to_string(first) + "-" + std::to_string(last)
           + " are not ids of this run (0-" + std::to_string(expected - 1) + ")";
  if (!sender)
    return "no node to bind to";
  auto node = sender->node();
  for (auto id = first; id <= last; ++id) {
    auto it = owner_.find(id);
    if (it != owner_.end() && it->second != node && joined(id))
      return client_name(id) + " is held by another node whose clients are still joined";
  }
  for (auto id = first; id <= last; ++id)
    owner_[id] = node;
  return "";
}

bool client_registry::speaks_from(std::uint32_t id, const caf::strong_actor_ptr& sender,
                                  bool enforce) const {
  if (!enforce)
    return true;
  auto it = owner_.find(id);
  return it != owner_.end() && sender && sender->node() == it->second;
}

client_registry::round_pick client_registry::pick_round(const scenario& sc, double now,
                                                        std::uint32_t round,
                                                        std::size_t want) const {
  round_pick p;
  for (auto& [id, c] : clients_) {
    if (c.busy)
      ++p.busy;
    else if (!sc.clients.online.online(id, now, round, sc.seed) || sc.faults.away(id, now))
      ++p.offline;
    else
      p.ids.push_back(id);
  }
  rng r(mix_seed(sc.seed, round));
  shuffle(p.ids, r);
  if (p.ids.size() > want)
    p.ids.resize(want);
  std::sort(p.ids.begin(), p.ids.end());
  return p;
}

std::optional<std::uint32_t> client_registry::pick_one(const scenario& sc, double now,
                                                       std::uint64_t draw) {
  // Sampling without replacement by rank: a client drawn offline is taken
  // out of the idle set until the pick is made, then put back. Each idle,
  // online client is equally likely; the draw depends only on the set of
  // idle clients, not on the order they joined or became idle in.
  rng r(mix_seed(sc.seed, 3'000'000 + draw));
  std::vector<std::uint32_t> passed; // drawn offline, out for this pick
  std::optional<std::uint32_t> pick;
  while (!idle_.empty()) {
    auto id = idle_.kth(static_cast<std::size_t>(uniform_below(r, idle_.size())));
    if (sc.clients.online.online(id, now, draw, sc.seed) && !sc.faults.away(id, now)) {
      pick = id;
      break;
    }
    idle_.erase(id);
    passed.push_back(id);
  }
  for (auto id : passed)
    idle_.insert(id);
  return pick;
}

} // namespace fedsp
