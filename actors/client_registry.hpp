// client_registry: the server's book of clients (docs/architecture.md,
// "The server's rooms"). Who joined, with what profile and how many
// samples; which node a client id is bound to (fedsp serve); who is busy;
// and whom a round or an asynchronous slot picks.
//
// It is a plain object the server owns, not an actor: every question the
// server asks it is answered at once, in the server's own turn, so the
// virtual clock's order never waits on a message. Flower's ClientManager
// plays the same role. Its sampling is deterministic in (seed, round or
// draw): the same scenario picks the same clients on every machine.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "actors/client.hpp"
#include "runtime/id_set.hpp"
#include "runtime/profile.hpp"

namespace fedsp {

class client_registry {
public:
  struct entry {
    client_actor handle;
    std::uint64_t num_samples = 0;
    client_profile profile;
    double ready_at = 0; // when the model it received has arrived
    bool busy = false;   // it has a task (in virtual time); changed by set_busy only
  };

  client_registry() = default;

  /// Draws the profiles of clients 0..n-1 once from the scenario's seed.
  client_registry(const scenario& sc, std::uint32_t n);

  // -- membership ----------------------------------------------------------------

  /// Records client `id` (again, after a rejoin); its profile is its drawn one
  /// (the default profile for an id beyond the scenario's clients).
  entry& join(std::uint32_t id, client_actor handle, std::uint64_t num_samples);

  bool joined(std::uint32_t id) const { return clients_.count(id) != 0; }
  entry* find(std::uint32_t id);

  /// The client whose actor is `who` leaves; its id, or none if unknown.
  std::optional<std::uint32_t> leave(const caf::actor_addr& who);

  /// The task of client `id` is over (or it got one): no-op for an unknown id.
  void set_busy(std::uint32_t id, bool busy);

  std::size_t size() const { return clients_.size(); }
  bool empty() const { return clients_.empty(); }
  std::map<std::uint32_t, entry>::const_iterator begin() const { return clients_.begin(); }
  std::map<std::uint32_t, entry>::const_iterator end() const { return clients_.end(); }

  // -- join nodes (fedsp serve) ------------------------------------------------------

  /// Binds ids first..last to the node of `sender`; "" when done, else why
  /// not (ids out of 0..expected-1, no sender, or an id held by another
  /// node whose clients are still joined). Nothing is bound when it refuses.
  std::string bind(std::uint32_t first, std::uint32_t last, const caf::strong_actor_ptr& sender,
                   std::uint32_t expected);

  /// Does a message about client `id` come from the node it is bound to?
  /// Always true when no join node is in use (`enforce` false).
  bool speaks_from(std::uint32_t id, const caf::strong_actor_ptr& sender, bool enforce) const;

  // -- sampling ---------------------------------------------------------------------

  /// A synchronous round's pick: idle, online clients, shuffled by
  /// (seed, round), cut to `want`, in id order; and how many were left out
  /// as offline or busy.
  struct round_pick {
    std::vector<std::uint32_t> ids;
    std::uint32_t offline = 0;
    std::uint32_t busy = 0;
  };
  round_pick pick_round(const scenario& sc, double now, std::uint32_t round,
                        std::size_t want) const;

  /// An asynchronous slot's pick: an idle client online at `now`, each
  /// equally likely, drawn by (seed, draw); none if nobody is. Idle clients
  /// are drawn at random by rank until one is online, so a dispatch costs
  /// O(log N) for N clients while most are online, not a walk over all.
  std::optional<std::uint32_t> pick_one(const scenario& sc, double now, std::uint64_t draw);

private:
  std::map<std::uint32_t, entry> clients_;
  std::vector<client_profile> profiles_; // by client id, drawn from the scenario
  std::map<std::uint32_t, caf::node_id> owner_; // fedsp serve: each id's node
  id_set idle_; // joined and not busy: what pick_one draws from
};

} // namespace fedsp
