// The byte mutator shared by the fuzzers (fuzz_codec.cpp, fuzz_parsers.cpp):
// 1-4 random mutations per input (bit flips, interesting bytes, truncation,
// insertion, a duplicated span, a spliced tail of another corpus input, a
// random aligned word, a small change to a 32-bit field).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "runtime/rng.hpp"

namespace fedsp::fuzz {

using bytes = std::vector<unsigned char>;

inline void mutate(bytes& b, rng& r, const std::vector<bytes>& corpus) {
  static const unsigned char interesting[] = {0x00, 0x01, 0x7f, 0x80, 0xff, 0xfe, 0x40, 0x20};
  auto ops = 1 + uniform_below(r, 4);
  for (std::uint64_t k = 0; k < ops; ++k) {
    if (b.empty()) {
      b.push_back(static_cast<unsigned char>(r()));
      continue;
    }
    auto at = uniform_below(r, b.size());
    switch (uniform_below(r, 8)) {
      case 0: b[at] ^= static_cast<unsigned char>(1u << uniform_below(r, 8)); break;
      case 1: b[at] = interesting[uniform_below(r, sizeof interesting)]; break;
      case 2: b.resize(at); break;
      case 3: b.insert(b.begin() + static_cast<std::ptrdiff_t>(at), 1 + uniform_below(r, 16),
                       static_cast<unsigned char>(r()));
        break;
      case 4: { // duplicate a span
        auto len = std::min<std::size_t>(1 + uniform_below(r, 64), b.size() - at);
        bytes span(b.begin() + static_cast<std::ptrdiff_t>(at),
                   b.begin() + static_cast<std::ptrdiff_t>(at + len));
        b.insert(b.begin() + static_cast<std::ptrdiff_t>(uniform_below(r, b.size())),
                 span.begin(), span.end());
        break;
      }
      case 5: { // splice the tail of another message
        auto& other = corpus[uniform_below(r, corpus.size())];
        auto from = uniform_below(r, other.size());
        b.resize(at);
        b.insert(b.end(), other.begin() + static_cast<std::ptrdiff_t>(from), other.end());
        break;
      }
      case 6: { // a random aligned word (pointers, sizes, counts)
        auto w = (at / 8) * 8;
        if (w + 8 <= b.size()) {
          auto x = r();
          std::memcpy(&b[w], &x, 8);
        }
        break;
      }
      default: { // a small change to a 32-bit field
        auto w = (at / 4) * 4;
        if (w + 4 <= b.size()) {
          std::uint32_t x;
          std::memcpy(&x, &b[w], 4);
          x += static_cast<std::uint32_t>(uniform_below(r, 33)) - 16u;
          std::memcpy(&b[w], &x, 4);
        }
      }
    }
  }
}

/// How long and from which seed a fuzzer runs: `--seconds S` and `--seed N`
/// among args[from...] (defaults 10 s, seed 1); nullopt on anything else.
struct run_limits {
  double seconds = 10;
  std::uint64_t seed = 1;
};
inline std::optional<run_limits> parse_run_limits(const std::vector<std::string>& args,
                                                  std::size_t from) {
  run_limits out;
  for (std::size_t i = from; i < args.size(); ++i) {
    if (args[i] == "--seconds" && i + 1 < args.size())
      out.seconds = std::stod(args[++i]);
    else if (args[i] == "--seed" && i + 1 < args.size())
      out.seed = std::stoull(args[++i]);
    else
      return std::nullopt;
  }
  return out;
}

/// Every file of the folder `dir`, as bytes (none if it is not a folder).
inline std::vector<bytes> load_corpus(const std::string& dir) {
  std::vector<bytes> corpus;
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec))
    return corpus;
  for (auto& entry : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(entry.path(), std::ios::binary);
    corpus.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  return corpus;
}

} // namespace fedsp::fuzz
