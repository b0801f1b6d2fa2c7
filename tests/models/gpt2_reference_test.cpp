// fedsp's GPT-2 against an independent PyTorch implementation
// (reference/gpt2_reference.py, outputs committed under reference/tiny-gpt2):
// the checkpoint loads through the Hugging Face path, and logits, the
// answer-token loss and the prompt gradient agree within float32 precision.
#include <cmath>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "models/checkpoint.hpp"
#include "models/scoring.hpp"
#include "runtime/json.hpp"

namespace fedsp::models {
namespace {

const std::string dir = FEDSP_SOURCE_DIR "/tests/models/reference/tiny-gpt2";

json reference() {
  std::ifstream in(dir + "/reference.json");
  std::stringstream ss;
  ss << in.rdbuf();
  auto j = json::parse(ss.str());
  EXPECT_TRUE(j.ok());
  return j.ok() ? j.value() : json();
}

torch::Tensor tensor_of(const json& j, const char* key, std::vector<std::int64_t> shape) {
  std::vector<float> v;
  for (auto& x : j.find(key)->as_array())
    v.push_back(static_cast<float>(x.as_number()));
  return torch::tensor(v).view(shape);
}

double maxdiff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

class gpt2_reference : public ::testing::Test {
protected:
  json ref = reference();
  std::int64_t B = 2, T = 8, P = 3, V = 64;
  torch::Tensor idx = tensor_of(ref, "idx", {B, T}).to(torch::kLong);
  torch::Tensor prefix = tensor_of(ref, "prefix", {2, 2, 4, P, 8}); // (L, 2, H, P, hd)
  gpt model{nullptr};

  void SetUp() override {
    auto m = load_gpt(dir + "/model.safetensors");
    ASSERT_TRUE(m.ok()) << m.err().text;
    model = m.value();
    model->eval();
  }
};

TEST_F(gpt2_reference, hugging_face_layout_loads_with_its_config) {
  EXPECT_EQ(model->config().n_layer, 2);
  EXPECT_EQ(model->config().n_embd, 32);
  EXPECT_EQ(model->config().vocab_size, 64);
  EXPECT_EQ(model->config().tokenizer, "gpt2");
}

TEST_F(gpt2_reference, logits_without_prompts_match) {
  torch::NoGradGuard no_grad;
  auto d = maxdiff(model->forward(idx, torch::Tensor()), tensor_of(ref, "logits_plain", {B, T, V}));
  std::printf("logits (no prompts) maxdiff %.3g\n", d);
  EXPECT_LT(d, 1e-4);
}

TEST_F(gpt2_reference, logits_with_prompts_match) {
  torch::NoGradGuard no_grad;
  auto d = maxdiff(model->forward(idx, prefix), tensor_of(ref, "logits_prefix", {B, T, V}));
  std::printf("logits (prompts) maxdiff %.3g\n", d);
  EXPECT_LT(d, 1e-4);
}

TEST_F(gpt2_reference, answer_loss_and_prompt_gradient_match) {
  auto p = prefix.clone().set_requires_grad(true);
  std::vector<encoded_sequence> seqs(2);
  std::vector<const encoded_sequence*> ptrs;
  for (std::int64_t b = 0; b < B; ++b) {
    for (std::int64_t t = 0; t < T; ++t)
      seqs[static_cast<std::size_t>(b)].tokens.push_back(idx[b][t].item<std::int64_t>());
    seqs[static_cast<std::size_t>(b)].answer_start = 5;
    ptrs.push_back(&seqs[static_cast<std::size_t>(b)]);
  }
  auto [x, y] = make_batch(ptrs);
  auto loss = answer_loss(model->forward(x, p), y);
  loss.backward();
  double want = ref.find("loss")->as_number();
  std::printf("loss %.7f reference %.7f diff %.3g\n", loss.item<double>(), want,
              std::fabs(loss.item<double>() - want));
  EXPECT_NEAR(loss.item<double>(), want, 1e-5);
  auto d = maxdiff(p.grad(), tensor_of(ref, "prefix_grad", {2, 2, 4, P, 8}));
  std::printf("prompt gradient maxdiff %.3g\n", d);
  EXPECT_LT(d, 1e-5);
}

TEST_F(gpt2_reference, zero_length_prompts_give_exactly_the_plain_model) {
  torch::NoGradGuard no_grad;
  auto plain = model->forward(idx, torch::Tensor());
  auto empty = model->forward(idx, torch::zeros({2, 2, 4, 0, 8}));
  EXPECT_TRUE(torch::equal(plain, empty));
}

} // namespace
} // namespace fedsp::models
