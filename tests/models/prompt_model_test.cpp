// The small decoder with deep prefix prompts, through its torch-free facade.
#include <cmath>

#include <gtest/gtest.h>

#include "models/prompt_model.hpp"

namespace fedsp {
namespace {

model_params tiny() {
  model_params p;
  p.layers = 2;
  p.width = 32;
  p.heads = 4;
  p.context = 64;
  p.prompt_length = 4;
  p.init_std = 0.2;
  return p;
}

TEST(prompt_model, layout_is_layers_x_2_x_heads_x_prefix_x_head_dim) {
  prompt_model m(tiny(), 1);
  auto layout = m.layout();
  ASSERT_EQ(layout.tensors.size(), 1u);
  EXPECT_EQ(layout.tensors[0].name, "prefix");
  EXPECT_EQ(layout.tensors[0].shape, (std::vector<std::uint32_t>{2, 2, 4, 4, 8}));
  EXPECT_EQ(m.initial_prompts(3).numel(), 2u * 2 * 4 * 4 * 8);
  EXPECT_EQ(m.initial_prompts(3), m.initial_prompts(3)); // seeded
}

TEST(prompt_model, same_seed_same_base_model) {
  prompt_model a(tiny(), 5), b(tiny(), 5), c(tiny(), 6);
  auto data = make_synthetic_task(20, 1);
  auto ps = a.initial_prompts(1);
  EXPECT_EQ(a.evaluate(ps, data).value().loss, b.evaluate(ps, data).value().loss);
  EXPECT_NE(a.evaluate(ps, data).value().loss, c.evaluate(ps, data).value().loss);
}

TEST(prompt_model, training_lowers_the_answer_loss_and_only_moves_prompts) {
  prompt_model m(tiny(), 1);
  auto data = make_synthetic_task(64, 2);
  auto start = m.initial_prompts(4);
  auto before = m.evaluate(start, data).value();
  auto rep = m.train(start, data, train_params{30, 0.3, 8, 7});
  ASSERT_TRUE(rep.ok()) << rep.err().message();
  EXPECT_LT(rep.value().loss_after, rep.value().loss_before);
  EXPECT_NE(rep.value().prompts.tensors[0].data, start.tensors[0].data);
  EXPECT_EQ(rep.value().num_samples, 64u);
  // The base is frozen: the starting prompts still score exactly as before.
  EXPECT_EQ(m.evaluate(start, data).value().loss, before.loss);
  EXPECT_LT(m.evaluate(rep.value().prompts, data).value().loss, before.loss);
}

TEST(prompt_model, prompts_steer_the_output) {
  prompt_model m(tiny(), 1);
  auto data = make_synthetic_task(16, 2);
  auto a = m.evaluate(m.initial_prompts(1), data).value();
  auto b = m.evaluate(m.initial_prompts(2), data).value();
  EXPECT_NE(a.loss, b.loss);
}

TEST(prompt_model, wrong_shape_and_nan_prompts_are_errors) {
  prompt_model m(tiny(), 1);
  auto data = make_synthetic_task(8, 2);
  auto ps = m.initial_prompts(1);
  auto wrong = ps;
  wrong.tensors[0].shape[3] = 5;
  wrong.tensors[0].data.resize(wrong.tensors[0].numel());
  auto r = m.train(wrong, data, train_params{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.err().code, errc::shape_mismatch);
  EXPECT_NE(r.err().text.find("prefix"), std::string::npos);
  auto nan = ps;
  nan.tensors[0].data[3] = NAN;
  EXPECT_EQ(m.evaluate(nan, data).err().code, errc::non_finite);
  EXPECT_EQ(m.train(ps, {}, train_params{}).err().code, errc::empty_input);
  EXPECT_EQ(m.train(ps, data, train_params{0, 0.1, 8, 1}).err().code, errc::bad_argument);
}

TEST(prompt_model, long_contexts_are_cut_from_the_left_to_keep_the_answer) {
  prompt_model m(tiny(), 1);
  mc_example ex{std::string(500, 'x') + " end:", {" yes", " no"}, 0, ""};
  auto r = m.evaluate(m.initial_prompts(1), {ex});
  ASSERT_TRUE(r.ok()) << r.err().message();
  EXPECT_TRUE(std::isfinite(r.value().loss));
}

TEST(prompt_model, scoring_accuracy_is_a_fraction_of_examples) {
  prompt_model m(tiny(), 1);
  auto data = make_synthetic_task(40, 9);
  auto r = m.evaluate(m.initial_prompts(1), data).value();
  EXPECT_EQ(r.num_examples, 40u);
  // 40 examples: accuracy moves in steps of 1/40.
  EXPECT_DOUBLE_EQ(std::round(r.acc * 40) / 40, r.acc);
  EXPECT_DOUBLE_EQ(std::round(r.acc_norm * 40) / 40, r.acc_norm);
}

} // namespace
} // namespace fedsp
