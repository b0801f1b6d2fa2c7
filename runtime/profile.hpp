// Heterogeneous clients: how fast each computes, how far away it is and when
// it is online (docs/architecture.md "The clock"). Scenario values such as "lognormal(0, 0.5)"
// are parsed here into distributions, sampled once per client with the
// run's seed, so a scenario always describes the same federation.
//
// Modelled durations (virtual seconds):
//   compute  = task FLOPs / (compute.reference_gflops * 1e9 * speed)
//   transfer = bytes / bandwidth + latency      (each direction)
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "runtime/error.hpp"
#include "runtime/rng.hpp"

namespace fedsp {

/// A per-client value: constant(v) (or just v), uniform(lo, hi),
/// lognormal(mu, sigma) (of the natural log), tiers(share=value, ...)
/// (exact shares of the clients, assigned by a seeded shuffle), or
/// trace(file) (one value per line, client i takes line i, cycling).
struct distribution {
  enum class kind { constant, uniform, lognormal, tiers, trace } k = kind::constant;
  std::vector<double> args;                       // constant/uniform/lognormal
  std::vector<std::pair<double, double>> tiers;   // (share, value), shares sum to 1
  std::string trace_path;
  std::vector<double> trace;                      // the trace file's values
  double lo = 0, hi = 1e300;                      // lognormal samples are clamped here

  /// The same value for every client.
  static distribution constant(double v) {
    distribution d;
    d.args = {v};
    return d;
  }

  /// Values for `count` clients, from `seed`.
  std::vector<double> sample(std::uint32_t count, std::uint64_t seed) const;
};

/// Parses `text`; `base_dir` anchors a trace's relative path. Values must
/// lie in [lo, hi] (checked for constants, bounds, tiers and trace lines;
/// lognormal samples are clamped there). Errors name the form expected or
/// the trace file's line.
result<distribution> parse_distribution(const std::string& text, double lo, double hi,
                                        const std::string& base_dir);

/// When clients are online: always; probability(p) (each round, or each
/// dispatch in async mode, a client is online with probability p); or
/// trace(file) with lines "client start end" (online in [start, end),
/// virtual seconds; clients not listed are always online).
struct availability {
  enum class kind { always, probability, trace } k = kind::always;
  double p = 1.0;
  std::string trace_path;
  std::map<std::uint32_t, std::vector<std::pair<double, double>>> windows;

  /// Is `client` online at time t? `draw` names the round (or dispatch) so
  /// that probability draws are reproducible.
  bool online(std::uint32_t client, double t, std::uint64_t draw, std::uint64_t seed) const;

  /// When `client`, online at t, goes offline (infinity if it stays).
  double offline_at(std::uint32_t client, double t) const;
};

result<availability> parse_availability(const std::string& text, const std::string& base_dir);

struct client_profile {
  double speed = 1.0;       // relative to the reference device
  double latency_s = 0.0;   // one way
  double bandwidth_Bps = std::numeric_limits<double>::infinity();

  double compute_seconds(double flops, double reference_flops_per_s) const {
    return flops / (reference_flops_per_s * speed);
  }
  double transfer_seconds(std::size_t bytes) const {
    return static_cast<double>(bytes) / bandwidth_Bps + latency_s;
  }
};

/// A standard normal deviate (Box-Muller, written out for reproducibility).
double normal01(rng& r);

} // namespace fedsp
