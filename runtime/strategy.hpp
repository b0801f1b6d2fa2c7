// Aggregation strategies with staleness (docs/architecture.md, docs/scenarios.md),
// as pure functions: the aggregator actor converts messages and calls these.
//
// An update's staleness is the number of versions published since the one
// it was trained from: tau = current version - base version.
//
// - fedavg (sync rounds) and fedbuff (Nguyen et al. 2022) fold a set of
//   updates into the current prompts as a weighted mean of their deltas:
//       x <- x + eta * sum_i (n_i / sum_j n_j) * s(tau_i) * (u_i - b_i)
//   with n_i the client's sample count, b_i the prompts the task was based
//   on and u_i what came back. For fresh updates (b_i = x, s = 1, eta = 1)
//   this is FedAvg exactly: sum_i n_i u_i / sum_j n_j.
// - fedasync (Xie et al. 2019) mixes one update as it arrives:
//       x <- (1 - a) x + a u,  a = alpha * s(tau).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/error.hpp"
#include "runtime/prompt_set.hpp"

namespace fedsp {

/// Every aggregation strategy, described once; the scenario's names, the
/// mode each fits, when the server folds, what the aggregator keeps and how
/// it folds are all read from this table (docs/architecture.md "Where to
/// add"). Adding a strategy: its enum value, its row, its fold in
/// fold_with (actors/aggregator.cpp) if it is not a delta sum, tests, docs.
enum class strategy_kind { fedavg, fedbuff, fedasync };

struct strategy_info {
  strategy_kind kind;
  const char* name;        // federation.aggregator
  bool async;              // fits federation.mode async (else sync rounds)
  bool folds_each_update;  // the server folds at every accepted update
                           // (else at the end of a round, or every buffer_size)
  bool keeps_update_prompts; // each update's prompts are kept whole (mixed
                             // one by one), not only summed as a delta
  bool default_for_mode;   // the aggregator a mode gets when none is named
};

inline constexpr strategy_info strategies[] = {
  // kind                    name        async  each   keep   default
  {strategy_kind::fedavg,   "fedavg",   false, false, false, true},
  {strategy_kind::fedbuff,  "fedbuff",  true,  false, false, true},
  {strategy_kind::fedasync, "fedasync", true,  true,  true,  false},
};

constexpr bool strategy_table_in_enum_order() {
  for (std::size_t i = 0; i < sizeof strategies / sizeof strategies[0]; ++i)
    if (static_cast<std::size_t>(strategies[i].kind) != i)
      return false;
  return sizeof strategies / sizeof strategies[0]
         == static_cast<std::size_t>(strategy_kind::fedasync) + 1;
}
static_assert(strategy_table_in_enum_order(),
              "strategies must list every strategy_kind once, in enum order");

/// The row of the strategy named `name` (federation.aggregator, which the
/// scenario reader has checked against this table); fedavg's if unknown.
const strategy_info& strategy_named(const std::string& name);

/// s(tau): 1 at tau = 0 and non-increasing in tau.
///   constant        1
///   polynomial(a)   (1 + tau)^-a                  a > 0
///   hinge(a, b)     1 if tau <= b, else 1 / (a (tau - b) + 1)
///   sqrt            1 / sqrt(1 + tau)
struct staleness_fn {
  enum class kind { constant, polynomial, hinge, sqrt } k = kind::constant;
  double a = 0.5, b = 4;

  double operator()(std::uint64_t tau) const;

  /// "polynomial(0.5)" and the like, as a scenario writes it.
  std::string to_string() const;
};

/// Parses the forms above; the error says which form is expected.
result<staleness_fn> parse_staleness(const std::string& text);

struct stale_update {
  std::uint64_t id = 0;              // the update's task id
  double num_samples = 0;            // n_i > 0
  std::uint64_t staleness = 0;       // tau_i
  const prompt_set* base = nullptr;  // b_i: what the task was based on
  const prompt_set* prompts = nullptr; // u_i
};

/// fedavg / fedbuff: the weighted delta mean above, from `current`.
/// Errors: no updates (`empty_input`), a weight that is not finite and > 0
/// or an eta that is not (`bad_argument`), a layout that differs from
/// `current` (`shape_mismatch`). The result's version is 0.
result<prompt_set> fold_buffered(const prompt_set& current, const std::vector<stale_update>& ups,
                                 const staleness_fn& s, double eta = 1.0);

/// fold_buffered as updates arrive, in bounded memory: add() each update
/// once (its staleness is fixed between two folds, because versions only
/// change by folding); up to 16 are held and then folded, blocked over
/// elements, into a running sum in double; apply() folds the rest and adds
/// the sum to the current prompts. Equal to fold_buffered over the same
/// updates up to float rounding.
class fold_accumulator {
public:
  /// Errors as fold_buffered's, for this one update (layout against the
  /// first update's, weight > 0); a refused update leaves the sum unchanged.
  /// This overload copies the update's prompts; its base must outlive the
  /// next apply() or clear().
  std::optional<error> add(const stale_update& up, const staleness_fn& s);
  /// The same, taking the prompts and sharing the base.
  std::optional<error> add(std::uint64_t id, double num_samples, std::uint64_t staleness,
                           std::shared_ptr<const prompt_set> base, prompt_set prompts,
                           const staleness_fn& s);
  /// The same, reading the update's values in place: `layout` names its
  /// tensors and shapes (data empty), `data[t]` points at tensor t's
  /// layout.tensors[t].numel() floats, kept alive by `keep` until folded
  /// (the aggregator passes the received message: no copy of the prompts).
  std::optional<error> add_in_place(std::uint64_t id, double num_samples, std::uint64_t staleness,
                                    std::shared_ptr<const prompt_set> base,
                                    const prompt_set& layout, std::vector<const float*> data,
                                    std::shared_ptr<const void> keep, const staleness_fn& s);
  /// current + eta * sum_i n_i s(tau_i) (u_i - b_i) / sum_i n_i.
  result<prompt_set> apply(const prompt_set& current, double eta = 1.0);
  std::size_t count() const { return count_; }
  void clear();

private:
  struct held {
    double weight;
    std::shared_ptr<const prompt_set> base;
    std::vector<const float*> data; // per tensor, kept alive by `keep`
    std::shared_ptr<const void> keep;
  };
  void flush();

  static constexpr std::size_t batch_ = 16;
  prompt_set layout_;                    // names and shapes of the first update
  std::vector<std::vector<double>> sum_; // per tensor
  std::vector<held> pending_;            // not yet in sum_
  double total_n_ = 0;
  std::size_t count_ = 0;
};

/// fedasync: one update mixed into `current` with a = alpha * s(tau).
result<prompt_set> mix_async(const prompt_set& current, const stale_update& up,
                             const staleness_fn& s, double alpha);

} // namespace fedsp
