// safetensors and checkpoints: round trips, and a clear error naming the
// tensor for every kind of broken file.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <unistd.h>

#include "models/auxiliary.hpp"
#include "models/checkpoint.hpp"
#include "models/safetensors.hpp"

namespace fedsp::models {
namespace {

namespace fs = std::filesystem;
const std::string ref_dir = FEDSP_SOURCE_DIR "/tests/models/reference/tiny-gpt2";

class checkpoint_test : public ::testing::Test {
protected:
  fs::path dir = fs::temp_directory_path() / ("fedsp_ckpt_" + std::to_string(::getpid()));
  void SetUp() override { fs::create_directories(dir); }
  void TearDown() override { fs::remove_all(dir); }

  std::string path(const std::string& name) { return (dir / name).string(); }

  static std::string slurp(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  static void spit(const std::string& p, const std::string& bytes) {
    std::ofstream(p, std::ios::binary) << bytes;
  }
  /// A copy of the reference checkpoint with its config.json, as `name`.
  std::string copy_reference(const std::string& sub) {
    fs::create_directories(dir / sub);
    fs::copy_file(ref_dir + "/config.json", dir / sub / "config.json");
    fs::copy_file(ref_dir + "/model.safetensors", dir / sub / "model.safetensors");
    return (dir / sub / "model.safetensors").string();
  }
};

TEST_F(checkpoint_test, safetensors_round_trip_keeps_values_and_metadata) {
  st_file f;
  f.metadata["note"] = "hello";
  float a[] = {1.5f, -2.f, 3.25f, 0.f, 1e-30f, -7.f};
  f.tensors["a"] = st_tensor::from_floats({2, 3}, a);
  f.tensors["empty"] = st_tensor::from_floats({0}, a);
  ASSERT_FALSE(write_safetensors(path("x.safetensors"), f));
  auto back = read_safetensors(path("x.safetensors"));
  ASSERT_TRUE(back.ok()) << back.err().text;
  EXPECT_EQ(back.value().metadata.at("note"), "hello");
  EXPECT_EQ(back.value().tensors.at("a").shape, (std::vector<std::int64_t>{2, 3}));
  EXPECT_EQ(back.value().tensors.at("a").to_floats("a").value(), std::vector<float>(a, a + 6));
  EXPECT_EQ(slurp(path("x.safetensors")).size() % 8, 0u); // data 8-byte aligned
  EXPECT_FALSE(fs::exists(path("x.safetensors.tmp")));
}

TEST_F(checkpoint_test, every_truncation_is_an_error_never_a_crash) {
  auto bytes = slurp(ref_dir + "/model.safetensors");
  std::size_t n = 0;
  for (std::size_t cut = 0; cut < bytes.size(); cut += 97, ++n) {
    auto r = parse_safetensors(bytes.substr(0, cut), "cut");
    ASSERT_FALSE(r.ok()) << "a file cut at " << cut << " bytes was accepted";
    EXPECT_NE(r.err().text.find("cut"), std::string::npos);
  }
  // Cut in the data: the error names the first tensor that runs past the end.
  auto r = parse_safetensors(bytes.substr(0, bytes.size() - 10), "cut");
  EXPECT_NE(r.err().text.find("tensor '"), std::string::npos) << r.err().text;
  EXPECT_NE(r.err().text.find("truncated"), std::string::npos) << r.err().text;
  std::printf("%zu truncations rejected\n", n);
}

TEST_F(checkpoint_test, corrupt_headers_are_rejected_by_name) {
  auto with_header = [](const std::string& h) {
    std::string out(8, '\0');
    std::uint64_t n = h.size();
    for (int i = 0; i < 8; ++i)
      out[static_cast<std::size_t>(i)] = static_cast<char>(n >> (8 * i));
    return out + h + std::string(16, '\0');
  };
  auto err = [&](const std::string& h) {
    auto r = parse_safetensors(with_header(h), "f");
    return r.ok() ? std::string("accepted") : r.err().text;
  };
  EXPECT_NE(err("{not json").find("not JSON"), std::string::npos);
  EXPECT_NE(err(R"({"w":{"dtype":"Q7","shape":[2],"data_offsets":[0,8]}})").find("unsupported dtype 'Q7'"),
            std::string::npos);
  EXPECT_NE(err(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})").find("tensor 'w'"),
            std::string::npos);
  EXPECT_NE(err(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                R"("v":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})")
              .find("overlap"),
            std::string::npos);
  EXPECT_NE(err(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,8]}})").find("tensor 'w'"),
            std::string::npos);
  std::string huge(8, '\xff');
  EXPECT_NE(parse_safetensors(huge + "xx", "f").err().text.find("exceeds"), std::string::npos);
}

TEST_F(checkpoint_test, names_with_or_without_the_transformer_prefix_load_alike) {
  auto a = load_gpt(copy_reference("with"));
  ASSERT_TRUE(a.ok()) << a.err().text;
  auto src = read_safetensors(ref_dir + "/model.safetensors").value();
  st_file stripped;
  for (auto& [k, v] : src.tensors)
    stripped.tensors[k.rfind("transformer.", 0) == 0 ? k.substr(12) : k] = v;
  fs::create_directories(dir / "without");
  fs::copy_file(ref_dir + "/config.json", dir / "without" / "config.json");
  ASSERT_FALSE(write_safetensors((dir / "without" / "model.safetensors").string(), stripped));
  auto b = load_gpt((dir / "without" / "model.safetensors").string());
  ASSERT_TRUE(b.ok()) << b.err().text;
  auto idx = torch::randint(0, 64, {1, 6}, torch::kLong);
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(a.value()->forward(idx, {}), b.value()->forward(idx, {})));
}

TEST_F(checkpoint_test, inconsistent_checkpoints_name_the_tensor) {
  auto p = copy_reference("bad");
  // A config that disagrees with the weights.
  std::ofstream(dir / "bad" / "config.json")
    << R"({"n_layer":2,"n_head":4,"n_embd":64,"n_positions":16,"vocab_size":64})";
  auto r = load_gpt(p);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.err().text.find("tensor '"), std::string::npos) << r.err().text;
  EXPECT_NE(r.err().text.find("shape"), std::string::npos) << r.err().text;
  // A missing tensor.
  auto src = read_safetensors(ref_dir + "/model.safetensors").value();
  src.tensors.erase("transformer.h.1.mlp.c_fc.bias");
  fs::copy_file(ref_dir + "/config.json", dir / "bad" / "config.json",
                fs::copy_options::overwrite_existing);
  ASSERT_FALSE(write_safetensors(p, src));
  r = load_gpt(p);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.err().text.find("'h.1.mlp.c_fc.bias' is missing"), std::string::npos) << r.err().text;
  // An unknown tensor.
  src = read_safetensors(ref_dir + "/model.safetensors").value();
  src.tensors["transformer.h.9.attn.c_attn.weight"] = src.tensors["transformer.wpe.weight"];
  ASSERT_FALSE(write_safetensors(p, src));
  r = load_gpt(p);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.err().text.find("unexpected tensor 'h.9.attn.c_attn.weight'"), std::string::npos)
    << r.err().text;
  // No config at all.
  fs::remove(dir / "bad" / "config.json");
  EXPECT_NE(load_gpt(p).err().text.find("config.json"), std::string::npos);
  EXPECT_EQ(load_gpt(path("nothing.safetensors")).err().code, errc::io);
}

TEST_F(checkpoint_test, own_model_files_keep_config_and_layer_map) {
  decoder_config cfg;
  cfg.n_layer = 3;
  cfg.n_embd = 16;
  cfg.n_head = 2;
  cfg.n_positions = 12;
  cfg.vocab_size = 40;
  gpt global(cfg, 3);
  auto aux = build_auxiliary(global, aux_params{}).value();
  ASSERT_FALSE(save_gpt(path("aux.safetensors"), aux.model, "auxiliary"));
  auto back = load_gpt(path("aux.safetensors"));
  ASSERT_TRUE(back.ok()) << back.err().text;
  EXPECT_EQ(back.value()->layer_block(), (std::vector<std::int64_t>{0, 0, 0}));
  EXPECT_EQ(back.value()->num_parameters(), aux.model->num_parameters());
  auto idx = torch::randint(0, 40, {2, 5}, torch::kLong);
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(back.value()->forward(idx, {}), aux.model->forward(idx, {})));
}

TEST_F(checkpoint_test, prompt_files_round_trip_and_reject_nan_and_wrong_kind) {
  prompt_set ps{7, {{"prefix", {2, 3}, {1, 2, 3, 4, 5, 6}}, {"b", {2}, {0.5f, -0.5f}}}};
  ASSERT_FALSE(save_prompts(path("p.safetensors"), ps));
  auto back = load_prompts(path("p.safetensors"));
  ASSERT_TRUE(back.ok()) << back.err().text;
  EXPECT_EQ(back.value(), ps); // order, version and values
  ps.tensors[0].data[2] = NAN;
  ASSERT_FALSE(save_prompts(path("nan.safetensors"), ps));
  auto nan = load_prompts(path("nan.safetensors"));
  ASSERT_FALSE(nan.ok());
  EXPECT_EQ(nan.err().code, errc::non_finite);
  EXPECT_NE(load_prompts(ref_dir + "/model.safetensors").err().text.find("not a prompt checkpoint"),
            std::string::npos);
}

} // namespace
} // namespace fedsp::models
