#include "runtime/dataset.hpp"

#include <fstream>

#include "runtime/json.hpp"
#include "runtime/rng.hpp"

namespace fedsp {

std::vector<mc_example> make_synthetic_task(std::size_t n, std::uint64_t seed) {
  static const char* positive[] = {"good", "great", "fine", "nice", "happy",
                                   "calm"};
  static const char* negative[] = {"bad", "awful", "poor", "sad", "angry",
                                   "grim"};
  static const char* neutral[] = {"the", "a", "day", "was", "and", "it",
                                  "very", "food", "room", "staff"};
  rng r(seed);
  std::vector<mc_example> out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    int label = static_cast<int>(i % 2); // balanced: 0 = positive, 1 = negative
    // An odd number of sentiment words, the majority of them of `label`.
    int k = 3 + 2 * static_cast<int>(uniform_below(r, 2)); // 3 or 5
    int majority = k / 2 + 1 + static_cast<int>(uniform_below(r, k / 2 + 1));
    majority = std::min(majority, k);
    std::vector<std::string> words;
    for (int j = 0; j < k; ++j) {
      bool pos = (j < majority) == (label == 0);
      words.push_back(pos ? positive[uniform_below(r, 6)]
                          : negative[uniform_below(r, 6)]);
    }
    int fill = 2 + static_cast<int>(uniform_below(r, 4));
    for (int j = 0; j < fill; ++j)
      words.push_back(neutral[uniform_below(r, 10)]);
    shuffle(words, r);
    std::string text = "review:";
    for (auto& w : words)
      text += " " + w;
    out.push_back(
      mc_example{text + "\nsentiment:", {" positive", " negative"}, label, ""});
  }
  shuffle(out, r);
  return out;
}

result<std::vector<mc_example>> load_task_jsonl(const std::string& path) {
  std::ifstream in(path);
  if (!in)
    return error{errc::io, "cannot open task file '" + path + "'"};
  std::vector<mc_example> out;
  std::string line;
  std::size_t lineno = 0;
  auto bad = [&](const std::string& what) {
    return error{errc::malformed,
                 path + ":" + std::to_string(lineno) + ": " + what};
  };
  while (std::getline(in, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos)
      continue;
    auto doc = json::parse(line);
    if (!doc)
      return bad(doc.err().text);
    auto& j = doc.value();
    auto* ctx = j.find("context");
    auto* choices = j.find("choices");
    auto* label = j.find("label");
    if (ctx == nullptr || !ctx->is_string())
      return bad("'context' missing or not a string");
    if (choices == nullptr || !choices->is_array()
        || choices->as_array().size() < 2)
      return bad("'choices' missing or not an array of at least two strings");
    mc_example ex;
    ex.context = ctx->as_string();
    for (auto& c : choices->as_array()) {
      if (!c.is_string() || c.as_string().empty())
        return bad("'choices' holds a non-string or empty choice");
      ex.choices.push_back(c.as_string());
    }
    if (label == nullptr || !label->is_number()
        || label->as_number() != static_cast<int>(label->as_number())
        || label->as_number() < 0
        || label->as_number() >= static_cast<double>(ex.choices.size()))
      return bad("'label' missing or not an index into 'choices'");
    ex.label = static_cast<int>(label->as_number());
    if (auto* g = j.find("group"); g != nullptr && g->is_string())
      ex.group = g->as_string();
    out.push_back(std::move(ex));
  }
  if (out.empty())
    return error{errc::empty_input, "task file '" + path + "' has no examples"};
  return out;
}

result<std::vector<std::string>> load_corpus_jsonl(const std::string& path) {
  std::ifstream in(path);
  if (!in)
    return error{errc::io, "cannot open corpus file '" + path + "'"};
  std::vector<std::string> out;
  std::string line;
  std::size_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos)
      continue;
    auto doc = json::parse(line);
    if (!doc)
      return error{errc::malformed, path + ":" + std::to_string(lineno) + ": " + doc.err().text};
    auto* text = doc.value().find("text");
    if (text == nullptr || !text->is_string())
      return error{errc::malformed,
                   path + ":" + std::to_string(lineno) + ": 'text' missing or not a string"};
    out.push_back(text->as_string());
  }
  if (out.empty())
    return error{errc::empty_input, "corpus file '" + path + "' has no documents"};
  return out;
}

std::vector<std::vector<std::size_t>> partition_iid(std::size_t n,
                                                    std::size_t parts,
                                                    std::uint64_t seed) {
  std::vector<std::size_t> idx(n);
  for (std::size_t i = 0; i < n; ++i)
    idx[i] = i;
  rng r(seed);
  shuffle(idx, r);
  std::vector<std::vector<std::size_t>> out(parts);
  for (std::size_t i = 0; i < n; ++i)
    out[i % parts].push_back(idx[i]);
  return out;
}

} // namespace fedsp
