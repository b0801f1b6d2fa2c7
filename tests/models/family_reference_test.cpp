// fedsp's OPT and LLaMA-style families against independent PyTorch
// implementations (reference/family_reference.py, outputs committed under
// reference/tiny-*): each Hugging Face checkpoint folder loads as published
// (F32, F16, BF16; one file or shards), and logits without and with prompts,
// the answer-token loss and the prompt gradient agree to 1e-4 relative.
// Also: what a loader must refuse, by name.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "models/auxiliary.hpp"
#include "models/checkpoint.hpp"
#include "models/scoring.hpp"
#include "runtime/json.hpp"

namespace fedsp::models {
namespace {

namespace fs = std::filesystem;
const std::string refs = FEDSP_SOURCE_DIR "/tests/models/reference/";

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

torch::Tensor tensor_of(const json& j, const char* key, std::vector<std::int64_t> shape) {
  std::vector<float> v;
  for (auto& x : j.find(key)->as_array())
    v.push_back(static_cast<float>(x.as_number()));
  return torch::tensor(v).view(shape);
}

/// max |a - b| / max |b|: the difference relative to the reference's scale.
double reldiff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>() / b.abs().max().item<double>();
}

struct family_case {
  const char* folder;
  const char* family;
  const char* model_type;
};

class family_reference : public ::testing::TestWithParam<family_case> {
protected:
  json ref;
  gpt model{nullptr};
  torch::Tensor idx, prefix;
  std::int64_t B = 0, T = 0, V = 0;
  std::vector<std::int64_t> prefix_shape;

  void SetUp() override {
    auto j = json::parse(slurp(refs + GetParam().folder + "/reference.json"));
    ASSERT_TRUE(j.ok());
    ref = j.value();
    // The folder itself, as a user points model.checkpoint at it.
    auto m = load_gpt(refs + GetParam().folder);
    ASSERT_TRUE(m.ok()) << m.err().text;
    model = m.value();
    model->eval();
    B = static_cast<std::int64_t>(ref.find("B")->as_number());
    T = static_cast<std::int64_t>(ref.find("T")->as_number());
    V = model->config().vocab_size;
    for (auto& d : ref.find("prefix_shape")->as_array())
      prefix_shape.push_back(static_cast<std::int64_t>(d.as_number()));
    idx = tensor_of(ref, "idx", {B, T}).to(torch::kLong);
    prefix = tensor_of(ref, "prefix", prefix_shape);
  }
};

TEST_P(family_reference, config_picks_the_family) {
  EXPECT_EQ(model->config().family, GetParam().family);
  EXPECT_EQ(model->config().model_type, GetParam().model_type);
  // Prompts have one key and one value prefix per key/value head.
  EXPECT_EQ(prefix_shape[2], model->config().kv_heads());
  EXPECT_EQ(prefix_shape[4], model->config().head_dim());
}

TEST_P(family_reference, logits_without_prompts_match) {
  torch::NoGradGuard no_grad;
  auto d = reldiff(model->forward(idx, torch::Tensor()), tensor_of(ref, "logits_plain", {B, T, V}));
  std::printf("%s logits (no prompts) relative diff %.3g\n", GetParam().folder, d);
  EXPECT_LT(d, 1e-4);
}

TEST_P(family_reference, logits_with_prompts_match) {
  torch::NoGradGuard no_grad;
  auto d = reldiff(model->forward(idx, prefix), tensor_of(ref, "logits_prefix", {B, T, V}));
  std::printf("%s logits (prompts) relative diff %.3g\n", GetParam().folder, d);
  EXPECT_LT(d, 1e-4);
}

TEST_P(family_reference, answer_loss_and_prompt_gradient_match) {
  auto p = prefix.clone().set_requires_grad(true);
  std::vector<encoded_sequence> seqs(static_cast<std::size_t>(B));
  std::vector<const encoded_sequence*> ptrs;
  for (std::int64_t b = 0; b < B; ++b) {
    auto& s = seqs[static_cast<std::size_t>(b)];
    for (std::int64_t t = 0; t < T; ++t)
      s.tokens.push_back(idx[b][t].item<std::int64_t>());
    s.answer_start = static_cast<std::int64_t>(ref.find("answer_start")->as_number());
    ptrs.push_back(&s);
  }
  auto [x, y] = make_batch(ptrs);
  auto loss = answer_loss(model->forward(x, p), y);
  loss.backward();
  double want = ref.find("loss")->as_number();
  auto rel = std::fabs(loss.item<double>() - want) / std::fabs(want);
  auto g = reldiff(p.grad(), tensor_of(ref, "prefix_grad", prefix_shape));
  std::printf("%s loss %.7f reference %.7f relative diff %.3g; prompt gradient relative diff %.3g\n",
              GetParam().folder, loss.item<double>(), want, rel, g);
  EXPECT_LT(rel, 1e-4);
  EXPECT_LT(g, 1e-4);
}

TEST_P(family_reference, fedsp_file_round_trip_keeps_family_and_logits) {
  auto path = (fs::temp_directory_path() / (std::string("fedsp_family_") + GetParam().folder
                                            + ".safetensors"))
                .string();
  ASSERT_FALSE(save_gpt(path, model).has_value());
  auto back = load_gpt(path);
  ASSERT_TRUE(back.ok()) << back.err().text;
  fs::remove(path);
  back.value()->eval();
  EXPECT_EQ(back.value()->config().family, model->config().family);
  EXPECT_EQ(back.value()->config().tie_word_embeddings, model->config().tie_word_embeddings);
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(back.value()->forward(idx, prefix), model->forward(idx, prefix)));
}

TEST_P(family_reference, auxiliary_model_shares_one_block_and_runs_the_prompts) {
  auto aux = build_auxiliary(model, aux_params{});
  ASSERT_TRUE(aux.ok()) << aux.err().text;
  auto& a = aux.value().model;
  EXPECT_EQ(a->num_blocks(), 1);
  EXPECT_EQ(a->depth(), model->depth());
  EXPECT_LT(a->num_parameters(), model->num_parameters());
  torch::NoGradGuard no_grad;
  auto logits = a->forward(idx, prefix);
  EXPECT_EQ(logits.sizes(), (std::vector<std::int64_t>{B, T, V}));
  EXPECT_TRUE(torch::isfinite(logits).all().item<bool>());
  // With one block, the auxiliary model is the global model truncated to
  // block 0 repeated: at depth 1 both compute the same thing.
}

INSTANTIATE_TEST_SUITE_P(
  families, family_reference,
  ::testing::Values(family_case{"tiny-opt", "opt", "opt"},
                    family_case{"tiny-opt-post", "opt", "opt"},
                    family_case{"tiny-llama", "llama", "llama"},
                    family_case{"tiny-qwen2", "llama", "qwen2"}),
  [](const auto& info) {
    std::string n = info.param.folder;
    for (auto& ch : n)
      if (ch == '-')
        ch = '_';
    return n;
  });

// -- what the loader refuses ------------------------------------------------------------

/// A copy of a reference folder whose config.json is edited by `edit`.
std::string edited_copy(const std::string& folder, const std::string& from,
                        const std::string& to) {
  auto dir = fs::temp_directory_path() / ("fedsp_edit_" + folder);
  fs::remove_all(dir);
  fs::copy(refs + folder, dir);
  auto text = slurp((dir / "config.json").string());
  auto at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos)
    text.replace(at, from.size(), to);
  std::ofstream((dir / "config.json").string()) << text;
  return dir.string();
}

std::string load_error(const std::string& path) {
  auto m = load_gpt(path);
  return m.ok() ? std::string("(loaded)") : m.err().text;
}

TEST(family_loader, an_unknown_config_key_is_refused_by_name) {
  auto dir = edited_copy("tiny-llama", "\"mlp_bias\": false", "\"mlp_bias\": false, \"moe_experts\": 8");
  auto e = load_error(dir);
  EXPECT_NE(e.find("'moe_experts'"), std::string::npos) << e;
  EXPECT_NE(e.find("config.json"), std::string::npos) << e;
}

TEST(family_loader, unsupported_values_are_refused_by_name) {
  for (auto [folder, from, to, key] :
       {std::tuple{"tiny-llama", "\"rope_type\": \"llama3\"", "\"rope_type\": \"yarn\"", "yarn"},
        {"tiny-llama", "\"hidden_act\": \"silu\"", "\"hidden_act\": \"gelu\"", "hidden_act"},
        {"tiny-llama", "\"mlp_bias\": false", "\"mlp_bias\": true", "mlp_bias"},
        {"tiny-opt", "\"activation_function\": \"relu\"", "\"activation_function\": \"gelu\"",
         "activation_function"},
        {"tiny-opt", "\"enable_bias\": true", "\"enable_bias\": false", "enable_bias"},
        {"tiny-qwen2", "\"use_sliding_window\": false", "\"use_sliding_window\": true",
         "use_sliding_window"},
        {"tiny-opt", "\"model_type\": \"opt\"", "\"model_type\": \"bloom\"", "bloom"},
        {"tiny-llama", "\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3", "key/value heads"},
        {"tiny-qwen2", "\"max_window_layers\": 2", "\"max_window_layers\": 2, \"layer_types\": "
         "[\"full_attention\", \"sliding_attention\"]", "sliding_attention"},
        {"tiny-llama", "\"mlp_bias\": false", "\"mlp_bias\": false, \"rope_interleaved\": true",
         "rope_interleaved"}}) {
    auto e = load_error(edited_copy(folder, from, to));
    EXPECT_NE(e.find(key), std::string::npos) << folder << ": " << e;
  }
}

TEST(family_loader, keys_of_newer_and_smollm_configs_load_when_they_change_nothing) {
  auto dir = edited_copy("tiny-qwen2", "\"max_window_layers\": 2",
                         "\"max_window_layers\": 2, \"layer_types\": [\"full_attention\", "
                         "\"full_attention\"], \"rope_interleaved\": false, "
                         "\"is_llama_config\": true");
  EXPECT_EQ(load_error(dir), "(loaded)");
}

TEST(family_loader, shards_are_checked_against_the_index) {
  // A shard outside the folder.
  auto dir = fs::temp_directory_path() / "fedsp_shards";
  fs::remove_all(dir);
  fs::copy(refs + "tiny-llama", dir);
  auto index = (dir / "model.safetensors.index.json").string();
  auto text = slurp(index);
  auto hostile = text;
  auto at = hostile.find("model-00001-of-00002.safetensors");
  hostile.replace(at, 32, "../model-00001-of-00002.safetensors");
  std::ofstream(index) << hostile;
  auto e = load_error(dir.string());
  EXPECT_NE(e.find("not a plain file name"), std::string::npos) << e;
  // A missing shard.
  std::ofstream(index) << text;
  fs::remove(dir / "model-00002-of-00002.safetensors");
  e = load_error(dir.string());
  EXPECT_NE(e.find("model-00002-of-00002.safetensors"), std::string::npos) << e;
  // Neither a single file nor an index.
  fs::remove(index);
  e = load_error(dir.string());
  EXPECT_NE(e.find("neither model.safetensors nor"), std::string::npos) << e;
}

TEST(family_loader, a_missing_untied_head_is_named) {
  // tiny-llama's head is untied: lm_head.weight is a parameter of its own.
  // Take it out of the shard that holds it.
  auto dir = fs::temp_directory_path() / "fedsp_untied";
  fs::remove_all(dir);
  fs::copy(refs + "tiny-llama", dir);
  for (auto shard : {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}) {
    auto path = (dir / shard).string();
    auto st = read_safetensors(path);
    ASSERT_TRUE(st.ok());
    if (st.value().tensors.erase("lm_head.weight")) {
      ASSERT_FALSE(write_safetensors(path, st.value()).has_value());
    }
  }
  auto e = load_error(dir.string());
  EXPECT_NE(e.find("'lm_head.weight' is missing"), std::string::npos) << e;
}

TEST(family_presets, every_family_has_presets_that_build) {
  for (auto name : {"opt-tiny", "llama-tiny"}) {
    auto c = model_preset(name);
    ASSERT_TRUE(c.ok()) << name;
    gpt m(c.value(), 1);
    torch::NoGradGuard no_grad;
    auto logits = m->forward(torch::zeros({1, 5}, torch::kLong), torch::Tensor());
    EXPECT_EQ(logits.size(2), c.value().vocab_size);
  }
  // Published sizes (parameter counts of the HF checkpoints, head tied).
  auto count = [](const char* name) {
    auto c = model_preset(name).value();
    c.n_layer = 1; // one block, to keep the test light; scale below
    gpt one(c, 1);
    auto per_block = one->num_parameters();
    c.n_layer = 2;
    gpt two(c, 1);
    auto block = two->num_parameters() - per_block;
    return per_block - block + block * model_preset(name).value().n_layer;
  };
  EXPECT_EQ(count("opt-125m"), 125239296);    // OPTForCausalLM facebook/opt-125m
  EXPECT_EQ(count("smollm-135m"), 134515008); // LlamaForCausalLM HuggingFaceTB/SmolLM-135M
}

} // namespace
} // namespace fedsp::models
