// The null and mlp model kinds (models/simple_model.hpp): what a task does,
// that the mlp learns, and that scenarios name them correctly.
#include <cmath>

#include <gtest/gtest.h>

#include <torch/torch.h>

#include "models/simple_model.hpp"
#include "runtime/rng.hpp"

namespace fedsp {
namespace {

scenario with(const std::string& yaml) {
  auto sc = parse_scenario(yaml, "s.yaml");
  EXPECT_TRUE(sc) << sc.err().text;
  return sc.value();
}

TEST(simple_model, null_returns_its_parameters_unchanged) {
  auto m = simple_model::create(with("model:\n  kind: null\n  parameters: 1000\nmethod:\n"
                                     "  name: fedprompt\n"))
             .value();
  EXPECT_EQ(m->parameters(), 1000);
  auto p = m->initial();
  ASSERT_EQ(p.numel(), 1000u);
  p.tensors[0].data[5] = 2.5f;
  auto r = m->train(p, 1).value();
  EXPECT_EQ(r.params, p);
  EXPECT_EQ(m->task_flops(), 0.0);
  EXPECT_TRUE(std::isnan(m->evaluate(p).first));
}

TEST(simple_model, mlp_has_the_issue_s_size_and_learns_the_teacher) {
  auto sc = with("model:\n  kind: mlp\nmethod:\n  name: fedprompt\ntraining:\n"
                 "  prompt_steps: 1\n  prompt_lr: 0.5\n");
  auto m = simple_model::create(sc).value();
  EXPECT_EQ(m->parameters(), 9610); // 64*128 + 128 + 128*10 + 10
  auto p = m->initial();
  EXPECT_EQ(p.numel(), 9610u);
  auto [acc0, loss0] = m->evaluate(p);
  double loss_first = 0, loss_last = 0;
  for (std::uint64_t step = 0; step < 300; ++step) {
    auto r = m->train(p, step).value();
    if (step == 0)
      loss_first = r.loss_before;
    loss_last = r.loss_after;
    p = r.params;
  }
  auto [acc1, loss1] = m->evaluate(p);
  EXPECT_LT(loss1, loss0);
  EXPECT_LT(loss_last, loss_first);
  // Ten classes: chance is 0.1; 300 SGD steps of 32 samples get far above.
  EXPECT_GT(acc1, acc0 + 0.2) << acc0 << " -> " << acc1;
  // The same seed gives the same step.
  EXPECT_EQ(m->train(p, 7).value().params, m->train(p, 7).value().params);
  auto bad = p;
  bad.tensors.pop_back();
  EXPECT_EQ(m->train(bad, 1).err().code, errc::shape_mismatch);
}

TEST(simple_model, an_mlp_step_is_the_step_autograd_takes) {
  // The kernel writes its gradients out by hand (softmax cross-entropy,
  // ReLU); LibTorch's autograd on the same weights and samples is the
  // independent reference.
  auto sc = with("model:\n  kind: mlp\n  mlp_input: 12\n  mlp_hidden: 20\n  mlp_classes: 5\n"
                 "  mlp_samples: 16\nmethod:\n  name: fedprompt\ntraining:\n"
                 "  prompt_steps: 1\n  prompt_lr: 0.3\n");
  auto m = simple_model::create(sc, false).value();
  auto p = m->initial();
  for (auto& t : p.tensors) // non-zero biases too
    for (std::size_t i = 0; i < t.data.size(); ++i)
      t.data[i] += 0.01f * static_cast<float>(i % 7);
  std::vector<float> xs;
  std::vector<std::int64_t> ys;
  m->samples(mix_seed(9, 0), 16, xs, ys);
  auto tensor = [](const tensor_buffer& t) {
    std::vector<std::int64_t> shape(t.shape.begin(), t.shape.end());
    return torch::tensor(t.data).reshape(shape).clone().requires_grad_(true);
  };
  auto w1 = tensor(p.tensors[0]), b1 = tensor(p.tensors[1]);
  auto w2 = tensor(p.tensors[2]), b2 = tensor(p.tensors[3]);
  auto x = torch::tensor(xs).reshape({16, 12});
  auto y = torch::tensor(ys);
  auto z = torch::nn::functional::linear(torch::relu(torch::nn::functional::linear(x, w1, b1)),
                                         w2, b2);
  auto loss = torch::nn::functional::cross_entropy(z, y);
  loss.backward();
  auto r = m->train(p, 9).value();
  EXPECT_NEAR(r.loss_before, loss.item<double>(), 1e-5);
  std::vector<torch::Tensor> refs{w1, b1, w2, b2};
  for (std::size_t t = 0; t < 4; ++t) {
    auto want = (refs[t] - 0.3 * refs[t].grad()).detach().flatten();
    auto& got = r.params.tensors[t].data;
    ASSERT_EQ(static_cast<std::size_t>(want.numel()), got.size());
    for (std::size_t i = 0; i < got.size(); ++i)
      EXPECT_NEAR(got[i], want[static_cast<std::int64_t>(i)].item<float>(), 1e-5)
        << p.tensors[t].name << "[" << i << "]";
  }
}

TEST(simple_model, scenarios_refuse_kinds_with_other_methods) {
  auto r = parse_scenario("model:\n  kind: mlp\nmethod:\n  name: fedsp\n", "s.yaml");
  ASSERT_FALSE(r);
  EXPECT_NE(r.err().text.find("s.yaml:2: key 'model.kind' mlp needs method.name fedprompt"),
            std::string::npos)
    << r.err().text;
  r = parse_scenario("model:\n  kind: tiny\n", "s.yaml");
  ASSERT_FALSE(r);
  EXPECT_NE(r.err().text.find("one of gpt, null, mlp"), std::string::npos) << r.err().text;
}

} // namespace
} // namespace fedsp
