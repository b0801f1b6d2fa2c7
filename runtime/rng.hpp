// Deterministic random numbers. std::mt19937_64 is specified bit for bit by
// the standard, but std::*_distribution are not, so the helpers below are
// written out: the same seed gives the same run on every platform.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace fedsp {

using rng = std::mt19937_64;

/// Uniform integer in [0, n), n > 0 (rejection sampling, no modulo bias).
inline std::uint64_t uniform_below(rng& r, std::uint64_t n) {
  std::uint64_t limit = ~std::uint64_t{0} - (~std::uint64_t{0} % n);
  std::uint64_t x;
  do
    x = r();
  while (x >= limit);
  return x % n;
}

/// Uniform double in [0, 1) with 53 random bits.
inline double uniform01(rng& r) {
  return static_cast<double>(r() >> 11) * (1.0 / 9007199254740992.0);
}

/// Fisher-Yates shuffle with uniform_below.
template <class T>
void shuffle(std::vector<T>& xs, rng& r) {
  for (std::size_t i = xs.size(); i > 1; --i)
    std::swap(xs[i - 1], xs[uniform_below(r, i)]);
}

/// Mixes a base seed with a stream id (splitmix64), for independent streams
/// such as "client 3, round 7".
inline std::uint64_t mix_seed(std::uint64_t seed, std::uint64_t stream) {
  std::uint64_t z = seed + 0x9E3779B97F4A7C15ull * (stream + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

} // namespace fedsp
