#include "runtime/prepare.hpp"

#include "runtime/files.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <unistd.h>

#include "runtime/dataset.hpp"
#include "runtime/json.hpp"
#include "runtime/rng.hpp"

namespace fedsp {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t errors_shown = 20;

/// Opens a regular file for reading (bounded: runtime/files.hpp), or says why not.
result<std::ifstream> open_regular(const std::string& path, const char* what) {
  return open_bounded_file(path, limits::task_file_bytes, what);
}

/// One example line checked the way load_task_jsonl reads it, with every
/// problem of the line named; nullopt when it is fine.
std::optional<std::string> check_line(const std::string& line, mc_example& ex) {
  auto doc = json::parse(line);
  if (!doc)
    return "not JSON: " + doc.err().text;
  auto& j = doc.value();
  if (!j.is_object())
    return std::string("not a JSON object");
  auto* ctx = j.find("context");
  auto* choices = j.find("choices");
  auto* label = j.find("label");
  auto* group = j.find("group");
  if (ctx == nullptr || !ctx->is_string())
    return std::string("'context' missing or not a string");
  if (choices == nullptr || !choices->is_array() || choices->as_array().size() < 2)
    return std::string("'choices' missing or not an array of at least two strings");
  ex = mc_example{};
  ex.context = ctx->as_string();
  std::set<std::string> seen;
  for (auto& c : choices->as_array()) {
    if (!c.is_string() || c.as_string().empty())
      return std::string("'choices' holds a non-string or empty choice");
    if (!seen.insert(c.as_string()).second)
      return "'choices' lists \"" + c.as_string().substr(0, 40) + "\" twice";
    ex.choices.push_back(c.as_string());
  }
  if (label == nullptr || !label->is_number() || !std::isfinite(label->as_number())
      || label->as_number() != std::floor(label->as_number()) || label->as_number() < 0
      || label->as_number() >= static_cast<double>(ex.choices.size()))
    return "'label' missing or not an index into 'choices' (0.."
           + std::to_string(ex.choices.size() - 1) + ")";
  ex.label = static_cast<int>(label->as_number());
  if (group != nullptr) {
    if (!group->is_string())
      return std::string("'group' is not a string");
    ex.group = group->as_string();
  }
  return std::nullopt;
}

result<std::vector<mc_example>> read_examples(const std::string& path) {
  auto in = open_regular(path, "input");
  if (!in)
    return in.err();
  std::vector<mc_example> out;
  std::vector<std::string> problems;
  std::size_t bad = 0, lineno = 0;
  std::string line;
  line_reader lines(in.value(), path);
  while (lines.next(line)) {
    lineno = lines.number();
    if (line.find_first_not_of(" \t\r") == std::string::npos)
      continue;
    mc_example ex;
    if (auto why = check_line(line, ex)) {
      if (++bad <= errors_shown)
        problems.push_back(path + ":" + std::to_string(lineno) + ": " + *why);
      continue;
    }
    out.push_back(std::move(ex));
  }
  if (auto err = lines.failure())
    return *err;
  if (in.value().bad())
    return error{errc::io, "reading '" + path + "' failed"};
  if (bad > 0) {
    std::string text;
    for (auto& p : problems)
      text += p + "\n";
    if (bad > errors_shown)
      text += "... and " + std::to_string(bad - errors_shown) + " more bad lines\n";
    text += std::to_string(bad) + " of " + std::to_string(bad + out.size())
            + " examples are malformed; nothing was written";
    return error{errc::malformed, text};
  }
  if (out.empty())
    return error{errc::empty_input, "'" + path + "' holds no examples"};
  return out;
}

/// The LM corpus: JSONL with "text" when the file ends in .jsonl, else
/// plain text split at blank lines.
result<std::vector<std::string>> read_corpus(const std::string& path) {
  if (fs::path(path).extension() == ".jsonl") {
    if (auto in = open_regular(path, "corpus"); !in)
      return in.err();
    return load_corpus_jsonl(path);
  }
  auto in = open_regular(path, "corpus");
  if (!in)
    return in.err();
  std::vector<std::string> docs;
  std::string line, cur;
  auto flush = [&] {
    if (cur.find_first_not_of(" \t\r\n") != std::string::npos)
      docs.push_back(cur);
    cur.clear();
  };
  line_reader lines(in.value(), path);
  while (lines.next(line)) {
    if (!line.empty() && line.back() == '\r')
      line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) {
      flush();
      continue;
    }
    if (!cur.empty())
      cur += '\n';
    cur += line;
  }
  if (auto err = lines.failure())
    return *err;
  flush();
  if (docs.empty())
    return error{errc::empty_input, "corpus '" + path + "' holds no text"};
  return docs;
}

json example_json(const mc_example& ex) {
  json::array choices;
  for (auto& c : ex.choices)
    choices.emplace_back(c);
  json j = json::object{{"context", ex.context}, {"choices", choices}, {"label", ex.label}};
  if (!ex.group.empty())
    j.set("group", ex.group);
  return j;
}

std::optional<error> write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.flush();
  if (!out)
    return error{errc::io, "cannot write '" + path.string() + "'"};
  return std::nullopt;
}

} // namespace

result<prepare_summary> prepare_jsonl(const prepare_options& o) {
  for (double f : {o.public_fraction, o.valid_fraction, o.test_fraction})
    if (!(f > 0) || !(f < 1))
      return error{errc::bad_argument, "--public, --valid and --test must be fractions in (0, 1)"};
  if (o.public_fraction + o.valid_fraction + o.test_fraction >= 1)
    return error{errc::bad_argument, "--public, --valid and --test add up to "
                                       + std::to_string(o.public_fraction + o.valid_fraction
                                                        + o.test_fraction)
                                       + ": nothing is left for the clients' train split"};
  if (o.out.empty())
    return error{errc::bad_argument, "--out is empty"};
  std::error_code ec;
  fs::path out(o.out);
  if (fs::exists(out, ec) && (!fs::is_directory(out, ec) || !fs::is_empty(out, ec)))
    return error{errc::bad_argument, "'" + o.out + "' exists and is not an empty folder; "
                                     "choose another --out or remove it"};
  auto examples = read_examples(o.in);
  if (!examples)
    return examples.err();
  auto& xs = examples.value();

  // Stratified split: each label's examples shuffled, then cut into test,
  // valid, public and train (the rest).
  std::map<int, std::vector<std::size_t>> by_label;
  for (std::size_t i = 0; i < xs.size(); ++i)
    by_label[xs[i].label].push_back(i);
  rng r(o.seed);
  std::map<std::string, std::vector<std::size_t>> split{
    {"public", {}}, {"train", {}}, {"valid", {}}, {"test", {}}};
  for (auto& [label, idx] : by_label) {
    shuffle(idx, r);
    auto n = static_cast<double>(idx.size());
    auto cut = [&](double f) { return static_cast<std::size_t>(std::llround(n * f)); };
    std::size_t a = std::min(idx.size(), cut(o.test_fraction));
    std::size_t b = std::min(idx.size(), a + cut(o.valid_fraction));
    std::size_t c = std::min(idx.size(), b + cut(o.public_fraction));
    split["test"].insert(split["test"].end(), idx.begin(), idx.begin() + static_cast<long>(a));
    split["valid"].insert(split["valid"].end(), idx.begin() + static_cast<long>(a),
                          idx.begin() + static_cast<long>(b));
    split["public"].insert(split["public"].end(), idx.begin() + static_cast<long>(b),
                           idx.begin() + static_cast<long>(c));
    split["train"].insert(split["train"].end(), idx.begin() + static_cast<long>(c), idx.end());
  }
  for (auto& [name, idx] : split) {
    if (idx.empty())
      return error{errc::empty_input, std::to_string(xs.size()) + " examples leave the " + name
                                        + " split empty at these fractions; "
                                          "more examples are needed"};
    shuffle(idx, r); // labels interleaved within each split
  }

  std::vector<std::string> corpus;
  if (!o.corpus.empty()) {
    auto c = read_corpus(o.corpus);
    if (!c)
      return c.err();
    corpus = std::move(c.value());
  } else {
    for (auto i : split["public"])
      corpus.push_back(xs[i].context);
  }

  prepare_summary s;
  s.examples = xs.size();
  s.public_examples = split["public"].size();
  s.train = split["train"].size();
  s.valid = split["valid"].size();
  s.test = split["test"].size();
  s.labels = by_label.size();
  std::map<std::string, std::size_t> groups;
  for (auto& ex : xs)
    if (!ex.group.empty())
      ++groups[ex.group];
  s.groups = groups.size();
  s.corpus_documents = corpus.size();
  for (auto& d : corpus)
    s.corpus_bytes += d.size();

  // Everything goes to a staging folder beside --out first.
  auto parent = out.has_parent_path() ? out.parent_path() : fs::path(".");
  fs::create_directories(parent, ec);
  if (ec)
    return error{errc::io, "cannot create '" + parent.string() + "': " + ec.message()};
  auto staging = parent / (out.filename().string() + ".partial-" + std::to_string(::getpid()));
  fs::remove_all(staging, ec);
  if (!fs::create_directory(staging, ec) || ec)
    return error{errc::io, "cannot create '" + staging.string() + "': " + ec.message()};
  auto fail = [&](error e) {
    std::error_code ignore;
    fs::remove_all(staging, ignore);
    return e;
  };
  json stats_splits = json::object{};
  for (auto& [name, idx] : split) {
    std::string text;
    json per_label = json::object{};
    std::map<int, std::size_t> counts;
    for (auto i : idx) {
      text += example_json(xs[i]).dump();
      text += '\n';
      ++counts[xs[i].label];
    }
    for (auto& [label, n] : counts)
      per_label.set(std::to_string(label), n);
    stats_splits.set(name, json::object{{"examples", idx.size()}, {"per_label", per_label}});
    if (auto err = write_text(staging / (name + ".jsonl"), text))
      return fail(*err);
  }
  {
    std::string text;
    for (auto& d : corpus) {
      text += json(json::object{{"text", d}}).dump();
      text += '\n';
    }
    if (auto err = write_text(staging / "corpus.jsonl", text))
      return fail(*err);
  }
  std::vector<std::pair<std::string, std::size_t>> top(groups.begin(), groups.end());
  std::stable_sort(top.begin(), top.end(), [](auto& a, auto& b) { return a.second > b.second; });
  json top_groups = json::object{};
  for (std::size_t i = 0; i < std::min<std::size_t>(20, top.size()); ++i)
    top_groups.set(top[i].first, top[i].second);
  json stats = json::object{
    {"source", o.in},
    {"seed", o.seed},
    {"fractions", json::object{{"public", o.public_fraction},
                               {"valid", o.valid_fraction},
                               {"test", o.test_fraction}}},
    {"examples", s.examples},
    {"labels", s.labels},
    {"splits", stats_splits},
    {"groups", s.groups},
    {"largest_groups", top_groups},
    {"corpus", json::object{{"source", o.corpus.empty() ? std::string("public contexts") : o.corpus},
                            {"documents", s.corpus_documents},
                            {"bytes", s.corpus_bytes}}}};
  if (auto err = write_text(staging / "stats.json", stats.dump() + "\n"))
    return fail(*err);
  if (fs::exists(out, ec))
    fs::remove(out, ec); // an empty folder, checked above
  fs::rename(staging, out, ec);
  if (ec)
    return fail(error{errc::io, "cannot move '" + staging.string() + "' to '" + o.out
                                  + "': " + ec.message()});
  return s;
}

} // namespace fedsp
