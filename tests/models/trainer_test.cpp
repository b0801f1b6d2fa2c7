// Trainers: what each client stage may change, the server step, prompt
// adapters, schedules and pretraining.
#include <cmath>

#include <gtest/gtest.h>

#include "tests/models/trainer_fixtures.hpp"

#include "models/auxiliary.hpp"
#include "models/trainer.hpp"

namespace fedsp::models {
namespace {

using fixtures::prompt_cfg;
using fixtures::small;
using fixtures::task;

std::vector<torch::Tensor> snapshot(torch::nn::Module& m) {
  std::vector<torch::Tensor> out;
  for (auto& p : m.parameters())
    out.push_back(p.detach().clone());
  return out;
}

bool same(const std::vector<torch::Tensor>& a, torch::nn::Module& m) {
  auto b = m.parameters();
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!torch::equal(a[i], b[i]))
      return false;
  return true;
}

TEST(client_trainer, prompt_stage_changes_only_the_prompts) {
  gpt body(small(), 1);
  soft_prompt prompt(prompt_cfg(), 2);
  client_params p;
  p.model_steps = 0;
  p.prompt_steps = 3;
  client_trainer trainer(body, prompt, p);
  auto start = prompt->to_prompts(0);
  auto body_before = snapshot(*body);
  auto rep = trainer.round(start, task(16, 1), 3);
  ASSERT_TRUE(rep.ok()) << rep.err().text;
  EXPECT_TRUE(same(body_before, *body));
  EXPECT_NE(rep.value().prompts.tensors[0].data, start.tensors[0].data);
}

TEST(client_trainer, model_stage_changes_only_the_body) {
  gpt body(small(), 1);
  soft_prompt prompt(prompt_cfg(), 2);
  client_params p;
  p.model_steps = 3;
  p.prompt_steps = 0;
  client_trainer trainer(body, prompt, p);
  auto start = prompt->to_prompts(0);
  auto body_before = snapshot(*body);
  auto rep = trainer.round(start, task(16, 1), 3);
  ASSERT_TRUE(rep.ok()) << rep.err().text;
  EXPECT_FALSE(same(body_before, *body));
  EXPECT_EQ(rep.value().prompts.tensors[0].data, start.tensors[0].data);
}

TEST(client_trainer, alternating_rounds_lower_the_local_loss) {
  gpt body(small(), 1);
  soft_prompt prompt(prompt_cfg(), 2);
  client_params p;
  p.model_steps = 10;
  p.prompt_steps = 10;
  p.model_lr = 1e-3;
  p.prompt_lr = 0.1;
  p.rounds = 3;
  client_trainer trainer(body, prompt, p);
  auto data = task(48, 4);
  auto ps = prompt->to_prompts(0);
  double first = 0, last = 0;
  for (int r = 0; r < 3; ++r) {
    auto rep = trainer.round(ps, data, 10 + static_cast<std::uint64_t>(r));
    ASSERT_TRUE(rep.ok()) << rep.err().text;
    if (r == 0)
      first = rep.value().loss_before;
    last = rep.value().loss_after;
    ps = rep.value().prompts;
  }
  std::printf("client probe loss %.3f -> %.3f over 3 rounds\n", first, last);
  EXPECT_LT(last, first);
}

TEST(client_trainer, bad_prompts_and_empty_data_are_errors) {
  gpt body(small(), 1);
  soft_prompt prompt(prompt_cfg(), 2);
  client_trainer trainer(body, prompt, client_params{});
  auto ps = prompt->to_prompts(0);
  ps.tensors[0].data[1] = NAN;
  EXPECT_EQ(trainer.round(ps, task(4, 1), 1).err().code, errc::non_finite);
  ps = prompt->to_prompts(0);
  ps.tensors[0].shape[0] = 3;
  EXPECT_EQ(trainer.round(ps, task(4, 1), 1).err().code, errc::shape_mismatch);
  EXPECT_EQ(trainer.round(prompt->to_prompts(0), {}, 1).err().code, errc::empty_input);
}

// A checkpoint of the server step keeps its optimizer: a stage restored from
// the bytes takes exactly the step the original takes (AdamW's moments and
// the schedule's position included); garbage bytes are an error.
TEST(optimizer_stage, saved_state_resumes_the_same_steps) {
  torch::manual_seed(3);
  auto w0 = torch::randn({4, 3});
  auto make = [&](torch::Tensor& w) {
    w = w0.clone().set_requires_grad(true);
    return optimizer_stage({w}, lr_schedule{0.1, 2, 10}, 0.01);
  };
  auto grad_step = [](optimizer_stage& st, torch::Tensor& w, int k) {
    (w * w * static_cast<double>(k + 1)).sum().backward();
    st.step();
  };
  torch::Tensor a, b;
  auto sa = make(a);
  for (int k = 0; k < 3; ++k)
    grad_step(sa, a, k);
  auto bytes = sa.save();
  auto sb = make(b);
  {
    torch::NoGradGuard ng;
    b.copy_(a);
  }
  ASSERT_FALSE(sb.load(bytes));
  EXPECT_EQ(sb.steps_done(), 3);
  EXPECT_DOUBLE_EQ(sb.current_lr(), sa.current_lr());
  grad_step(sa, a, 3);
  grad_step(sb, b, 3);
  EXPECT_TRUE(torch::equal(a, b));
  // A fresh stage would have stepped differently (warm-up, no moments).
  torch::Tensor c;
  auto sc = make(c);
  {
    torch::NoGradGuard ng;
    c.copy_(b);
  }
  grad_step(sc, c, 4);
  grad_step(sb, b, 4);
  EXPECT_FALSE(torch::equal(b, c));
  auto err = sb.load("not an optimizer");
  ASSERT_TRUE(err);
  EXPECT_NE(err->text.find("optimizer state does not load"), std::string::npos);
}

TEST(server_trainer, tunes_prompts_on_the_frozen_global_model_with_distillation) {
  gpt global(small(), 1);
  auto aux = build_auxiliary(global, aux_params{}).value();
  soft_prompt prompt(prompt_cfg(), 2);
  server_params p;
  p.steps = 15;
  p.lr = 0.1;
  p.distill_weight = 0.5;
  server_trainer trainer(global, prompt, p, aux.model, aux.to_global);
  auto before = snapshot(*global);
  auto rep = trainer.round(prompt->to_prompts(4), task(32, 5), 1);
  ASSERT_TRUE(rep.ok()) << rep.err().text;
  EXPECT_TRUE(same(before, *global));
  EXPECT_LT(rep.value().loss_after, rep.value().loss_before);
  EXPECT_EQ(rep.value().prompts.version, 4u);

  server_params needs_aux;
  needs_aux.distill_weight = 1.0;
  server_trainer lonely(global, soft_prompt(prompt_cfg(), 2), needs_aux);
  EXPECT_EQ(lonely.round(prompt->to_prompts(0), task(8, 1), 1).err().code, errc::bad_argument);
}

TEST(soft_prompt, reparameterised_prompts_travel_as_their_parameters) {
  soft_prompt p(prompt_cfg(true), 3);
  auto ps = p->to_prompts(1);
  EXPECT_EQ(ps.tensors.size(), 5u); // embedding, down (w, b), up (w, b)
  EXPECT_EQ(p->materialize().sizes(), (std::vector<std::int64_t>{2, 2, 4, 4, 8}));
  soft_prompt q(prompt_cfg(true), 4);
  ASSERT_FALSE(q->load(ps));
  EXPECT_TRUE(torch::equal(p->materialize(), q->materialize()));
  EXPECT_TRUE(q->load(soft_prompt(prompt_cfg(false), 1)->to_prompts(0)).has_value());
}

TEST(soft_prompt, dropout_applies_in_training_only) {
  auto cfg = prompt_cfg();
  cfg.dropout = 0.5;
  soft_prompt p(cfg, 3);
  p->train();
  auto dropped = p->forward();
  EXPECT_GT((dropped == 0).sum().item<std::int64_t>(), 0);
  p->eval();
  EXPECT_TRUE(torch::equal(p->forward(), p->materialize()));
}

TEST(lr_schedule, warms_up_linearly_then_decays_to_zero) {
  lr_schedule s{1.0, 4, 12};
  EXPECT_DOUBLE_EQ(s.at(0), 0.25);
  EXPECT_DOUBLE_EQ(s.at(3), 1.0);
  EXPECT_DOUBLE_EQ(s.at(4), 1.0);
  EXPECT_DOUBLE_EQ(s.at(8), 0.5);
  EXPECT_DOUBLE_EQ(s.at(12), 0.0);
  EXPECT_DOUBLE_EQ(s.at(50), 0.0);
}

TEST(pretrain, next_token_loss_falls_and_heldout_is_reported) {
  auto cfg = small();
  cfg.initializer_range = 0.02;
  gpt model(cfg, 4);
  std::vector<std::int64_t> text;
  for (auto& ex : make_synthetic_task(300, 2))
    for (unsigned char c : ex.context + "\n")
      text.push_back(c);
  std::vector<std::int64_t> held(text.end() - 2000, text.end());
  text.resize(text.size() - 2000);
  lm_params p{60, 8, 32, 3e-3, 0.0, 0.1, 20, 4, 1};
  auto rep = pretrain(model, text, held, p);
  ASSERT_TRUE(rep.ok()) << rep.err().text;
  ASSERT_EQ(rep.value().heldout_curve.size(), 3u);
  std::printf("pretrain held-out loss %.3f -> %.3f\n", rep.value().heldout_curve.front().second,
              rep.value().heldout_curve.back().second);
  EXPECT_LT(rep.value().heldout_loss, std::log(256.0) - 1.0); // far below uniform
}

} // namespace
} // namespace fedsp::models
