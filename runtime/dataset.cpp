#include "runtime/dataset.hpp"

#include "runtime/files.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>

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
  auto opened = open_bounded_file(path, limits::task_file_bytes, "task file");
  if (!opened)
    return opened.err();
  auto& in = opened.value();
  std::vector<mc_example> out;
  std::string line;
  std::size_t lineno = 0;
  auto bad = [&](const std::string& what) {
    return error{errc::malformed,
                 path + ":" + std::to_string(lineno) + ": " + what};
  };
  line_reader lines(in, path);
  while (lines.next(line)) {
    lineno = lines.number();
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
  if (auto err = lines.failure())
    return *err;
  if (out.empty())
    return error{errc::empty_input, "task file '" + path + "' has no examples"};
  return out;
}

result<std::vector<std::string>> load_corpus_jsonl(const std::string& path) {
  auto opened = open_bounded_file(path, limits::task_file_bytes, "corpus file");
  if (!opened)
    return opened.err();
  auto& in = opened.value();
  std::vector<std::string> out;
  std::string line;
  std::size_t lineno = 0;
  line_reader lines(in, path);
  while (lines.next(line)) {
    lineno = lines.number();
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
  if (auto err = lines.failure())
    return *err;
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

namespace fedsp {

double sample_gamma(double shape, std::mt19937_64& r) {
  if (shape < 1.0) // boost: Gamma(a) = Gamma(a + 1) * U^(1/a)
    return sample_gamma(shape + 1.0, r) * std::pow(uniform01(r), 1.0 / shape);
  double d = shape - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
  for (;;) {
    // Standard normal by Box-Muller from two uniforms in (0, 1].
    double u1 = 1.0 - uniform01(r), u2 = uniform01(r);
    double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
    double v = 1.0 + c * z;
    if (v <= 0)
      continue;
    v = v * v * v;
    double u = 1.0 - uniform01(r);
    if (std::log(u) < 0.5 * z * z + d - d * v + d * std::log(v))
      return d * v;
  }
}

result<std::vector<std::vector<std::size_t>>>
partition_dirichlet(const std::vector<int>& labels, std::size_t parts, double alpha,
                    std::uint64_t seed) {
  if (parts == 0 || !(alpha > 0) || !std::isfinite(alpha))
    return error{errc::bad_argument, "dirichlet partition needs parts > 0 and alpha > 0"};
  std::map<int, std::vector<std::size_t>> by_label;
  for (std::size_t i = 0; i < labels.size(); ++i)
    by_label[labels[i]].push_back(i);
  rng r(seed);
  for (int attempt = 0; attempt < 100; ++attempt) {
    std::vector<std::vector<std::size_t>> out(parts);
    for (auto& [label, idx] : by_label) {
      auto shuffled = idx;
      shuffle(shuffled, r);
      std::vector<double> share(parts);
      double total = 0;
      for (auto& s : share)
        total += s = sample_gamma(alpha, r);
      // Cumulative cut points over this label's examples.
      double acc = 0;
      std::size_t from = 0;
      for (std::size_t k = 0; k < parts; ++k) {
        acc += share[k] / total;
        auto to = k + 1 == parts ? shuffled.size()
                                 : std::min(shuffled.size(), static_cast<std::size_t>(std::llround(
                                                               acc * static_cast<double>(shuffled.size()))));
        for (; from < to; ++from)
          out[k].push_back(shuffled[from]);
      }
    }
    if (std::all_of(out.begin(), out.end(), [](auto& s) { return !s.empty(); }))
      return out;
  }
  return error{errc::bad_argument, "dirichlet(alpha=" + std::to_string(alpha) + ") left a client "
                                     "without examples in 100 draws: raise alpha or lower the "
                                     "client count"};
}

result<std::vector<std::vector<std::size_t>>>
partition_by_group(const std::vector<std::string>& groups, std::size_t parts) {
  std::map<std::string, std::vector<std::size_t>> by_group;
  for (std::size_t i = 0; i < groups.size(); ++i)
    by_group[groups[i]].push_back(i);
  if (by_group.size() < parts)
    return error{errc::bad_argument, "partition by group: " + std::to_string(by_group.size())
                                       + " groups for " + std::to_string(parts) + " clients"};
  std::vector<std::pair<std::string, std::vector<std::size_t>>> sorted(by_group.begin(),
                                                                       by_group.end());
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](auto& a, auto& b) { return a.second.size() > b.second.size(); });
  std::vector<std::vector<std::size_t>> out(parts);
  for (auto& [name, idx] : sorted) {
    auto smallest = std::min_element(out.begin(), out.end(),
                                     [](auto& a, auto& b) { return a.size() < b.size(); });
    smallest->insert(smallest->end(), idx.begin(), idx.end());
  }
  return out;
}

} // namespace fedsp
