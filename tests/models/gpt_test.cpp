// The decoder itself: causality and the reach of the prefix (torch-level).
#include <gtest/gtest.h>

#include "models/gpt.hpp"

namespace fedsp::models {
namespace {

decoder_config cfg() {
  decoder_config c;
  c.n_layer = 2;
  c.n_embd = 32;
  c.n_head = 4;
  c.n_positions = 16;
  c.initializer_range = 0.2;
  return c;
}

TEST(gpt, logits_do_not_depend_on_later_tokens) {
  gpt net(cfg(), 1);
  torch::NoGradGuard no_grad;
  auto a = torch::randint(0, 256, {1, 10}, torch::kLong);
  auto b = a.clone();
  b.index_put_({0, torch::indexing::Slice(6)}, 7); // change tokens 6..9
  auto prefix = torch::randn({2, 2, 4, 3, 8});     // (L, 2, H, P, hd)
  auto la = net->forward(a, prefix), lb = net->forward(b, prefix);
  auto early = torch::indexing::Slice(0, 6);
  auto maxdiff = (la.index({0, early}) - lb.index({0, early})).abs().max().item<double>();
  std::printf("causality maxdiff %.3g\n", maxdiff);
  EXPECT_LT(maxdiff, 1e-5);
  EXPECT_GT((la.index({0, 8}) - lb.index({0, 8})).abs().max().item<double>(), 1e-4);
}

TEST(gpt, every_position_sees_the_prefix) {
  gpt net(cfg(), 1);
  torch::NoGradGuard no_grad;
  auto idx = torch::randint(0, 256, {2, 8}, torch::kLong);
  auto p1 = torch::randn({2, 2, 4, 3, 8});
  auto p2 = p1.clone();
  p2[1][1] += 1.0; // change only the last layer's value prefix
  auto d = (net->forward(idx, p1) - net->forward(idx, p2)).abs().amax({0, 2}); // (T)
  for (int t = 0; t < 8; ++t)
    EXPECT_GT(d[t].item<double>(), 1e-4) << "position " << t;
}

TEST(gpt, empty_prefix_equals_no_prefix) {
  gpt net(cfg(), 1);
  torch::NoGradGuard no_grad;
  auto idx = torch::randint(0, 256, {2, 8}, torch::kLong);
  auto none = net->forward(idx, torch::Tensor());
  auto empty = net->forward(idx, torch::zeros({2, 2, 4, 0, 8}));
  EXPECT_LT((none - empty).abs().max().item<double>(), 1e-6);
}

TEST(gpt, too_long_input_is_refused) {
  gpt net(cfg(), 1);
  EXPECT_THROW(net->forward(torch::zeros({1, 17}, torch::kLong), torch::Tensor()),
               c10::Error);
}

} // namespace
} // namespace fedsp::models
