// The shipped global model (models/pretrained/README.md) loads and reaches the
// held-out loss it states, recomputed on the same held-out documents and the
// same fixed windows as `fedsp pretrain` used.
#include <cmath>
#include <fstream>

#include <gtest/gtest.h>

#include "models/checkpoint.hpp"
#include "models/safetensors.hpp"
#include "models/tokenizer.hpp"
#include "models/trainer.hpp"
#include "runtime/dataset.hpp"

namespace fedsp::models {
namespace {

const std::string model_path = FEDSP_SOURCE_DIR "/models/pretrained/tiny-spamassassin.safetensors";
const std::string corpus_path = FEDSP_SOURCE_DIR "/data/spamassassin/corpus.jsonl";

TEST(pretrained, shipped_model_loads_and_reaches_its_stated_heldout_loss) {
  auto file = read_safetensors(model_path);
  ASSERT_TRUE(file.ok()) << file.err().text;
  double stated = std::stod(file.value().metadata.at("heldout_loss"));
  EXPECT_NEAR(stated, 1.717, 0.001); // the figure in models/pretrained/README.md
  auto model = load_gpt(model_path);
  ASSERT_TRUE(model.ok()) << model.err().text;
  EXPECT_EQ(model.value()->num_parameters(), 858880);

  auto docs = load_corpus_jsonl(corpus_path);
  ASSERT_TRUE(docs.ok()) << docs.err().text << " (run 'make prepared')";
  // `fedsp pretrain --heldout 0.05`: the last 5% of the documents.
  auto n = docs.value().size();
  auto held = static_cast<std::size_t>(std::floor(static_cast<double>(n) * 0.05));
  byte_tokenizer tok;
  auto tokens = document_stream(tok, docs.value(), n - held, n);
  auto m = model.value();
  double loss = heldout_loss(m, tokens, 256, 16, 8);
  std::printf("held-out loss %.4f nats per byte (stated %.4f)\n", loss, stated);
  EXPECT_NEAR(loss, stated, 0.01);
  EXPECT_LT(loss, std::log(256.0) / 2); // far below a uniform byte model
  // Issue 13's target for the shipped model: at most 3.0 bits per byte.
  EXPECT_LE(loss / std::log(2.0), 3.0);
}

} // namespace
} // namespace fedsp::models
