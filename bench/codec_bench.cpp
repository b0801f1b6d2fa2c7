// Wire and aggregation costs for prompts of the sizes fedsp serves.
//
// Prompt sizes are L x 2 x C x P floats (deep prefix: keys and values per
// layer, P = 40 positions as in the FedSP reference code, 8 for quickstart):
//   quickstart   2 layers,   64 wide, P 8    ->      2,048 floats
//   tiny         4 layers,  128 wide, P 16   ->     16,384
//   gpt2        12 layers,  768 wide, P 40   ->    737,280
//   gpt2-medium 24 layers, 1024 wide, P 40   ->  1,966,080
#include <benchmark/benchmark.h>

#include "runtime/codec.hpp"
#include "runtime/fedavg.hpp"
#include "runtime/strategy.hpp"

#include <cstring>

namespace {

using namespace fedsp;

struct size_case {
  const char* name;
  std::uint32_t layers, width, prefix;
};

constexpr size_case cases[] = {{"quickstart", 2, 64, 8},
                               {"tiny", 4, 128, 16},
                               {"gpt2", 12, 768, 40},
                               {"gpt2-medium", 24, 1024, 40}};

prompt_set prompts_of(const size_case& c) {
  // (L, 2, H, P, hd) with H * hd = C; the split does not change the bytes.
  tensor_buffer t{"prefix", {c.layers, 2, 1, c.prefix, c.width}, {}};
  t.data.resize(t.numel());
  for (std::size_t i = 0; i < t.data.size(); ++i)
    t.data[i] = static_cast<float>(i % 1000) * 1e-3f;
  return prompt_set{1, {std::move(t)}};
}

envelope update_of(const prompt_set& ps) {
  return envelope{"client-1", update_msg{1, 1, 1, ps, 100, {{"loss_before", 1.0}}}};
}

void bm_encode(benchmark::State& st) {
  auto& c = cases[st.range(0)];
  auto env = update_of(prompts_of(c));
  std::size_t bytes = 0;
  for (auto _ : st) {
    auto buf = encode(env);
    bytes = buf.size_bytes();
    benchmark::DoNotOptimize(buf.words.data());
  }
  st.SetLabel(c.name);
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * bytes));
  st.counters["msg_bytes"] = static_cast<double>(bytes);
}

void bm_decode(benchmark::State& st) {
  auto& c = cases[st.range(0)];
  auto buf = encode(update_of(prompts_of(c)));
  for (auto _ : st) {
    auto env = decode(buf);
    benchmark::DoNotOptimize(env.ok());
  }
  st.SetLabel(c.name);
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * buf.size_bytes()));
}

void bm_fedavg_10(benchmark::State& st) {
  auto& c = cases[st.range(0)];
  std::vector<prompt_set> sets(10, prompts_of(c));
  std::vector<weighted_prompts> in;
  for (std::size_t i = 0; i < sets.size(); ++i)
    in.push_back({i + 1, 10.0 + static_cast<double>(i), &sets[i]});
  for (auto _ : st) {
    auto avg = fedavg(in);
    benchmark::DoNotOptimize(avg.ok());
  }
  st.SetLabel(c.name);
  st.SetBytesProcessed(
    static_cast<std::int64_t>(st.iterations() * 10 * sets[0].numel() * sizeof(float)));
}

// The aggregator's fold (runtime/strategy.hpp) of K = 10 parameter sets of
// the sizes, against copying the same bytes with memcpy: its
// bytes/s counts the K input sets it reads.
constexpr std::size_t fold_sizes[] = {9'610, 1'035'010};

/// A base of n floats and 10 updates of it.
std::pair<prompt_set, std::vector<prompt_set>> fold_inputs(std::size_t n) {
  prompt_set base{0, {tensor_buffer{"params", {static_cast<std::uint32_t>(n)}, {}}}};
  base.tensors[0].data.assign(n, 0.5f);
  std::vector<prompt_set> sets(10, base);
  for (std::size_t k = 0; k < sets.size(); ++k)
    for (std::size_t i = 0; i < n; ++i)
      sets[k].tensors[0].data[i] = static_cast<float>((i + k) % 1000) * 1e-3f;
  return {std::move(base), std::move(sets)};
}

void bm_fold_buffered_10(benchmark::State& st) {
  auto n = fold_sizes[st.range(0)];
  auto [base, sets] = fold_inputs(n);
  std::vector<stale_update> in;
  for (std::size_t k = 0; k < sets.size(); ++k)
    in.push_back({k + 1, 10.0 + static_cast<double>(k), k % 3, &base, &sets[k]});
  auto s = parse_staleness("sqrt").value();
  for (auto _ : st) {
    auto out = fold_buffered(base, in, s);
    benchmark::DoNotOptimize(out.ok());
  }
  st.SetLabel(std::to_string(n) + " floats x 10");
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * 10 * n * sizeof(float)));
}

// What the aggregator runs: each update added to the running sum as it is
// accepted, then one apply (runtime/strategy.hpp, fold_accumulator).
void bm_accumulate_10(benchmark::State& st) {
  auto n = fold_sizes[st.range(0)];
  auto [base, sets] = fold_inputs(n);
  auto s = parse_staleness("sqrt").value();
  auto shared_base = std::make_shared<const prompt_set>(base);
  fold_accumulator acc; // one for the run, as in the aggregator
  std::vector<prompt_set> copies;
  for (auto _ : st) {
    st.PauseTiming(); // the aggregator gets each update's prompts from decode
    copies = sets;
    st.ResumeTiming();
    acc.clear();
    for (std::size_t k = 0; k < copies.size(); ++k)
      acc.add(k + 1, 10.0 + static_cast<double>(k), k % 3, shared_base, std::move(copies[k]), s);
    auto out = acc.apply(base);
    benchmark::DoNotOptimize(out.ok());
  }
  st.SetLabel(std::to_string(n) + " floats x 10");
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * 10 * n * sizeof(float)));
}

void bm_memcpy_10(benchmark::State& st) {
  auto n = fold_sizes[st.range(0)] * 10;
  std::vector<float> src(n, 1.0f), dst(n);
  for (auto _ : st) {
    std::memcpy(dst.data(), src.data(), n * sizeof(float));
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  st.SetLabel(std::to_string(n / 10) + " floats x 10");
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * n * sizeof(float)));
}

// CRC-32 (the model's chunks and every log record and checkpoint are
// checked with it): an update of each size, as the log writes it.
void bm_crc32(benchmark::State& st) {
  auto& c = cases[st.range(0)];
  auto bytes = encode(update_of(prompts_of(c)));
  auto* p = reinterpret_cast<const char*>(bytes.words.data());
  auto n = bytes.size_bytes();
  for (auto _ : st)
    benchmark::DoNotOptimize(crc32(p, n));
  st.SetLabel(c.name);
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * n));
}

BENCHMARK(bm_crc32)->DenseRange(0, 3)->Unit(benchmark::kMicrosecond);
BENCHMARK(bm_fold_buffered_10)->DenseRange(0, 1)->Unit(benchmark::kMicrosecond);
BENCHMARK(bm_accumulate_10)->DenseRange(0, 1)->Unit(benchmark::kMicrosecond);
BENCHMARK(bm_memcpy_10)->DenseRange(0, 1)->Unit(benchmark::kMicrosecond);
BENCHMARK(bm_encode)->DenseRange(0, 3)->Unit(benchmark::kMicrosecond);
BENCHMARK(bm_decode)->DenseRange(0, 3)->Unit(benchmark::kMicrosecond);
BENCHMARK(bm_fedavg_10)->DenseRange(0, 3)->Unit(benchmark::kMicrosecond);

} // namespace

BENCHMARK_MAIN();
