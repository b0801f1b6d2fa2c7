#include "runtime/scenario.hpp"

#include "runtime/files.hpp"
#include "runtime/strategy.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <vector>

#include <yaml-cpp/yaml.h>

namespace fedsp {

namespace {

namespace fs = std::filesystem;

// A setter validates one scalar and stores it; it returns what is wrong.
using setter = std::function<std::optional<std::string>(const YAML::Node&)>;

struct field {
  std::string key;
  setter set;
};

/// A value as an error message shows it: whole up to 80 bytes, else its
/// start and its length (a 100 MB value is not echoed back).
std::string shown(const std::string& v) {
  if (v.size() <= 80)
    return v;
  return v.substr(0, 60) + "... (" + std::to_string(v.size()) + " bytes)";
}

/// The first key that a map of `n` (at any depth) holds twice, as an error
/// naming both lines; YAML forbids it and yaml-cpp would keep the last.
std::optional<std::pair<int, std::string>> duplicate_key(const YAML::Node& n) {
  if (n.IsMap()) {
    std::map<std::string, int> seen;
    for (auto it = n.begin(); it != n.end(); ++it) {
      auto key = it->first.IsScalar() ? it->first.Scalar() : std::string("?");
      auto line = it->first.Mark().line;
      auto [at, fresh] = seen.emplace(key, line);
      if (!fresh)
        return std::pair{line, "key '" + shown(key) + "' appears twice (lines "
                                 + std::to_string(at->second + 1) + " and "
                                 + std::to_string(line + 1) + ")"};
      if (auto d = duplicate_key(it->second))
        return d;
    }
  } else if (n.IsSequence()) {
    for (auto& item : n)
      if (auto d = duplicate_key(item))
        return d;
  }
  return std::nullopt;
}

template <class T>
setter uint_field(T& out, std::uint64_t lo, std::uint64_t hi) {
  return [&out, lo, hi](const YAML::Node& n) -> std::optional<std::string> {
    auto range = "an integer in [" + std::to_string(lo) + ", "
                 + std::to_string(hi) + "]";
    if (!n.IsScalar())
      return "must be " + range + ", got a " + (n.IsMap() ? "map" : "list");
    auto s = n.Scalar();
    if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos)
      return "must be " + range + ", got '" + shown(s) + "'";
    std::uint64_t v;
    try {
      v = std::stoull(s);
    } catch (...) {
      return "must be " + range + ", got '" + shown(s) + "'";
    }
    if (v < lo || v > hi)
      return "must be " + range + ", got " + shown(s);
    out = static_cast<T>(v);
    return std::nullopt;
  };
}

setter real_field(double& out, double lo, double hi) {
  return [&out, lo, hi](const YAML::Node& n) -> std::optional<std::string> {
    std::ostringstream range;
    range << "a number in [" << lo << ", " << hi << "]";
    if (!n.IsScalar())
      return "must be " + range.str();
    auto s = n.Scalar();
    char* end = nullptr;
    double v = std::strtod(s.c_str(), &end);
    if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(v))
      return "must be " + range.str() + ", got '" + shown(s) + "'";
    if (v < lo || v > hi)
      return "must be " + range.str() + ", got " + shown(s);
    out = v;
    return std::nullopt;
  };
}

setter bool_field(bool& out) {
  return [&out](const YAML::Node& n) -> std::optional<std::string> {
    if (!n.IsScalar() || (n.Scalar() != "true" && n.Scalar() != "false"))
      return "must be true or false";
    out = n.Scalar() == "true";
    return std::nullopt;
  };
}

setter string_field(std::string& out, std::vector<std::string> allowed = {}) {
  return [&out, allowed](const YAML::Node& n) -> std::optional<std::string> {
    // YAML reads a bare `null` as no value; where "null" is a choice
    // (model.kind), it means that choice.
    bool null_choice = std::find(allowed.begin(), allowed.end(), "null") != allowed.end();
    if (n.IsNull() && null_choice) {
      out = "null";
      return std::nullopt;
    }
    if (!n.IsScalar())
      return std::string("must be a string");
    auto s = n.Scalar();
    if (!allowed.empty()) {
      bool ok = false;
      std::string list;
      for (auto& a : allowed) {
        ok = ok || a == s;
        list += (list.empty() ? "" : ", ") + a;
      }
      if (!ok)
        return "must be one of " + list + ", got '" + shown(s) + "'";
    }
    out = s;
    return std::nullopt;
  };
}

std::string fmt_num(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

/// Applies "section.key=value" settings (fedsp run --set) to the parsed
/// file: the value is read as YAML and replaces or adds the key. `lines`
/// gets, per dotted key set, -2 - the setting's index (scenario_reader::fail).
std::optional<error> set_keys(YAML::Node& root, const std::vector<std::string>& settings,
                              std::map<std::string, int>& lines) {
  for (std::size_t i = 0; i < settings.size(); ++i) {
    auto& s = settings[i];
    auto eq = s.find('=');
    if (eq == std::string::npos || eq == 0)
      return error{errc::bad_scenario, "--set '" + shown(s) + "': expected KEY=VALUE, e.g. data.dir=DIR"};
    auto key = s.substr(0, eq);
    YAML::Node value;
    try {
      value = YAML::Load(s.substr(eq + 1));
    } catch (const YAML::Exception& e) {
      return error{errc::bad_scenario, "--set '" + shown(s) + "': the value is not YAML: " + e.msg};
    }
    auto dot = key.find('.');
    auto section = key.substr(0, dot);
    auto sub = dot == std::string::npos ? std::string() : key.substr(dot + 1);
    if (section.empty() || (dot != std::string::npos && (sub.empty() || sub.find('.') != std::string::npos)))
      return error{errc::bad_scenario, "--set '" + shown(s) + "': KEY is 'key' or 'section.key'"};
    lines[key] = -2 - static_cast<int>(i);
    if (sub.empty()) {
      root[section] = value;
      continue;
    }
    YAML::Node node = root[section];
    if (node.IsDefined() && !node.IsNull() && !node.IsMap())
      return error{errc::bad_scenario, "--set '" + shown(s) + "': '" + section + "' is not a map of keys"};
    if (!node.IsDefined() || node.IsNull()) {
      root[section] = YAML::Node(YAML::NodeType::Map);
      node = root[section];
    }
    node[sub] = value;
  }
  return std::nullopt;
}

class scenario_reader {
public:
  scenario_reader(std::string path, std::vector<std::string> settings = {})
    : path_(std::move(path)), settings_(std::move(settings)) {}

  result<scenario> read(const std::string& text) {
    YAML::Node root;
    try {
      root = YAML::Load(text);
    } catch (const YAML::Exception& e) {
      auto hint = e.msg.find("illegal map value") != std::string::npos
                    ? " (a ':' inside a value reads as a map: write tiers(0.7=1, 0.3=0.1), "
                      "or quote the value)"
                    : "";
      return fail(e.mark.line, "YAML syntax error: " + e.msg + hint);
    }
    if (root.IsNull())
      return fail(-1, "the scenario is empty");
    if (!root.IsMap())
      return fail(root.Mark().line, "the scenario must be a map of keys");
    if (auto d = duplicate_key(root))
      return fail(d->first, d->second);
    if (auto err = set_keys(root, settings_, set_lines_))
      return error{err->code, path_ + ": " + err->text};
    scenario sc;
    sc.source = settings_.empty() ? text : with_settings(root);
    sc.path = path_;
    sc.name = fs::path(path_).stem().string();
    auto& m = sc.model;
    auto& d = sc.data;
    auto& f = sc.federation;
    auto& t = sc.training;
    auto& mp = sc.method;
    std::map<std::string, std::vector<field>> sections{
      {"model",
       {{"kind", string_field(m.kind, {"gpt", "null", "mlp"})},
        {"parameters", uint_field(m.parameters, 1, 1'000'000'000)},
        {"mlp_input", uint_field(m.mlp_input, 1, 1'000'000)},
        {"mlp_hidden", uint_field(m.mlp_hidden, 1, 1'000'000)},
        {"mlp_classes", uint_field(m.mlp_classes, 2, 100'000)},
        {"mlp_samples", uint_field(m.mlp_samples, 1, 1'000'000)},
        {"layers", uint_field(m.layers, 1, 48)},
        {"width", uint_field(m.width, 8, 4096)},
        {"heads", uint_field(m.heads, 1, 64)},
        {"context", uint_field(m.context, 8, 4096)},
        {"prompt_length", uint_field(m.prompt_length, 1, 512)},
        {"prompt_init_std", real_field(m.prompt_init_std, 0.0, 10.0)},
        {"init_std", real_field(m.init_std, 0.0, 10.0)},
        {"checkpoint", string_field(m.checkpoint)},
        {"family", string_field(m.family, {"gpt2", "opt", "llama"})},
        {"kv_heads", uint_field(m.kv_heads, 0, 64)},
        {"tokenizer", string_field(m.tokenizer, {"byte", "gpt2", "opt", "hf"})},
        {"vocab_dir", string_field(m.vocab_dir)},
        {"reparameterize", bool_field(m.reparameterize)},
        {"prompt_dropout", real_field(m.prompt_dropout, 0.0, 0.9)}}},
      {"data",
       {{"kind", string_field(d.kind, {"synthetic", "jsonl"})},
        {"dir", string_field(d.dir)},
        {"train", uint_field(d.train, 1, 10'000'000)},
        {"test", uint_field(d.test, 1, 10'000'000)},
        {"public", uint_field(d.public_examples, 1, 10'000'000)}}},
      {"clients",
       {{"count", uint_field(sc.clients.count, 1, 1'000'000)},
        {"partition", string_field(sc.clients.partition, {"iid", "dirichlet", "group"})},
        {"alpha", real_field(sc.clients.alpha, 1e-3, 1e6)},
        {"speed", string_field(sc.clients.speed)},
        {"latency_s", string_field(sc.clients.latency_s)},
        {"bandwidth_mbps", string_field(sc.clients.bandwidth_mbps)},
        {"availability", string_field(sc.clients.availability_text)},
        {"dropout", real_field(sc.clients.dropout, 0.0, 1.0)}}},
      {"method",
       {{"name", string_field(mp.name, {"fedsp", "fedprompt", "fedprompt_single", "local",
                                        "centralized", "zeroshot"})},
        {"aux_method", string_field(mp.aux_method, {"share", "drop"})},
        {"aux_start", uint_field(mp.aux_start, 0, 4096)},
        {"aux_cell", uint_field(mp.aux_cell, 1, 4096)},
        {"aux_depth", uint_field(mp.aux_depth, 0, 4096)},
        {"aux_keep_every", uint_field(mp.aux_keep_every, 1, 4096)},
        {"distill_steps", uint_field(mp.distill_steps, 0, 10'000'000)},
        {"distill_lr", real_field(mp.distill_lr, 1e-9, 10.0)},
        {"distill_batch", uint_field(mp.distill_batch, 1, 65536)},
        {"distill_seq_len", uint_field(mp.distill_seq_len, 2, 65536)},
        {"distill_loss", string_field(mp.distill_loss, {"mse", "mixed", "prompted"})},
        {"server_steps", uint_field(mp.server_steps, 0, 10'000'000)},
        {"server_lr", real_field(mp.server_lr, 1e-9, 100.0)},
        {"server_batch", uint_field(mp.server_batch, 1, 65536)},
        {"server_distill_weight", real_field(mp.server_distill_weight, 0.0, 1e3)},
        {"server_examples", uint_field(mp.server_examples, 0, 100'000'000)},
        {"chunk_bytes", uint_field(mp.chunk_bytes, 1024, 64u << 20)}}},
      {"federation",
       {{"mode", string_field(f.mode, {"sync", "async"})},
        {"clock", string_field(f.clock, {"virtual", "real"})},
        {"aggregator", string_field(f.aggregator, [] {
           std::vector<std::string> names;
           for (auto& row : strategies)
             names.emplace_back(row.name);
           return names;
         }())},
        {"rounds", uint_field(f.rounds, 0, 1'000'000)},
        {"versions", uint_field(f.versions, 0, 100'000'000)},
        {"time_budget_s", real_field(f.time_budget_s, 0.0, 1e12)},
        {"clients_per_round", uint_field(f.clients_per_round, 0, 1'000'000)},
        {"over_selection", real_field(f.over_selection, 1.0, 10.0)},
        {"quorum", uint_field(f.quorum, 0, 1'000'000)},
        {"round_deadline_s", real_field(f.round_deadline_s, 0.001, 1e9)},
        {"late_updates", string_field(f.late_updates, {"drop", "stale"})},
        {"concurrency", uint_field(f.concurrency, 0, 1'000'000)},
        {"buffer_size", uint_field(f.buffer_size, 1, 1'000'000)},
        {"staleness", string_field(f.staleness_text)},
        {"max_staleness", uint_field(f.max_staleness, 0, 1'000'000'000)},
        {"max_update_ratio", real_field(f.max_update_ratio, 0.0, 1e30)},
        {"max_refused_in_a_row", uint_field(f.max_refused_in_a_row, 0, 1'000'000'000)},
        {"fedasync_alpha", real_field(f.fedasync_alpha, 1e-6, 1.0)},
        {"server_rate", real_field(f.server_rate, 1e-6, 100.0)},
        {"broadcast", string_field(f.broadcast, {"after_receiving", "after_aggregating"})},
        {"silence_s", real_field(f.silence_s, 0.05, 1e6)}}},
      {"training",
       {{"prompt_steps", uint_field(t.prompt_steps, 0, 1'000'000)},
        {"prompt_lr", real_field(t.prompt_lr, 1e-9, 100.0)},
        {"model_steps", uint_field(t.model_steps, 0, 1'000'000)},
        {"model_lr", real_field(t.model_lr, 1e-9, 100.0)},
        {"batch_size", uint_field(t.batch_size, 1, 65536)},
        {"accumulate", uint_field(t.accumulate, 1, 65536)}}},
      {"eval",
       {{"max_examples", uint_field(sc.eval.max_examples, 0, 10'000'000)},
        {"every", uint_field(sc.eval.every, 1, 1'000'000)}}},
      {"compute",
       {{"device", string_field(sc.compute.device)},
        {"workers_per_device", uint_field(sc.compute.workers_per_device, 0, 256)},
        {"dtype", string_field(sc.compute.dtype, {"f32", "bf16", "f16"})},
        {"device_memory_gb", real_field(sc.compute.device_memory_gb, 0.0, 1e6)},
        {"share_frozen_body", bool_field(sc.compute.share_frozen_body)},
        {"prefetch", bool_field(sc.compute.prefetch)},
        {"workers", uint_field(sc.compute.workers, 1, 256)},
        {"threads", uint_field(sc.compute.threads, 0, 256)},
        {"reference_gflops", real_field(sc.compute.reference_gflops, 1e-6, 1e9)}}},
      {"durability",
       {{"checkpoints", bool_field(sc.durability.checkpoints)},
        {"wal_sync", string_field(sc.durability.wal_sync, {"write", "fsync"})}}},
    };
    std::vector<field> top{{"name", string_field(sc.name)},
                           {"seed", uint_field(sc.seed, 0, ~std::uint64_t{0})}};
    for (auto it = root.begin(); it != root.end(); ++it) {
      auto key = it->first.Scalar();
      int line = line_at(key, it->first);
      if (key == "faults") {
        if (auto err = read_faults(it->second, line, sc))
          return *err;
        continue;
      }
      if (auto sec = sections.find(key); sec != sections.end()) {
        if (!it->second.IsMap())
          return fail(line, "'" + key + "' must be a map of keys");
        for (auto jt = it->second.begin(); jt != it->second.end(); ++jt) {
          auto sub = jt->first.Scalar();
          if (auto err = apply(sec->second, key + "." + sub, sub,
                               line_at(key + "." + sub, jt->first), jt->second))
            return *err;
        }
        continue;
      }
      if (auto err = apply(top, key, key, line, it->second))
        return *err;
    }
    return check(std::move(sc));
  }

private:
  /// The `faults` list: one map per fault (runtime/faults.hpp).
  std::optional<error> read_faults(const YAML::Node& list, int line, scenario& sc) {
    if (list.IsNull())
      return std::nullopt;
    if (!list.IsSequence())
      return fail(line, "'faults' must be a list of faults (- kind: ...)");
    static const std::vector<std::string> kinds = [] {
      std::vector<std::string> names;
      for (auto& row : fault_kinds)
        names.emplace_back(row.name);
      return names;
    }();
    for (std::size_t i = 0; i < list.size(); ++i) {
      auto& item = list[i];
      int at = item.Mark().line;
      auto where = "faults[" + std::to_string(i) + "]";
      if (!item.IsMap())
        return fail(at, where + " must be a map with a 'kind'");
      fault_spec f;
      f.index = i;
      f.line = at;
      std::string kind;
      double duration = -1, at_version = -1;
      std::vector<std::string> clients;
      setter clients_field = [&clients](const YAML::Node& n) -> std::optional<std::string> {
        if (n.IsScalar()) {
          clients.push_back(n.Scalar());
          return std::nullopt;
        }
        if (!n.IsSequence())
          return std::string("must be a client id, a range a-b, all, or a list of them");
        for (auto c : n) {
          if (!c.IsScalar())
            return std::string("must be a list of client ids or ranges");
          clients.push_back(c.Scalar());
        }
        return std::nullopt;
      };
      std::vector<field> fields{
        {"kind", string_field(kind, kinds)},
        {"clients", clients_field},
        {"direction", string_field(f.direction, {"up", "down", "both"})},
        {"at_s", real_field(f.at_s, 0.0, 1e12)},
        {"duration_s", real_field(duration, 0.0, 1e12)},
        {"at_version", real_field(at_version, 0.0, 1e15)},
        {"probability", real_field(f.probability, 0.0, 1.0)},
        {"delay_s", real_field(f.delay_s, 0.0, 3600.0)},
        {"bytes", uint_field(f.bytes, 1, 1 << 20)},
        {"factor", real_field(f.factor, 1.0, 1e6)},
        {"restart_after_s", real_field(f.restart_after_s, 0.0, 3600.0)},
        {"worker", uint_field(f.worker, 0, 255)},
      };
      for (auto jt = item.begin(); jt != item.end(); ++jt) {
        auto sub = jt->first.Scalar();
        if (auto err = apply(fields, where + "." + sub, sub, jt->first.Mark().line, jt->second))
          return err;
      }
      if (kind.empty())
        return fail(at, where + " needs a 'kind' (one of message_drop, message_delay, ...)");
      f.kind = *fault_kind_named(kind); // (string_field admitted only these names)
      auto set = parse_client_set(clients);
      if (!set)
        return fail(at, where + "." + set.err().text);
      f.clients = std::move(set).value();
      for (auto c : f.clients)
        if (c >= sc.clients.count)
          return fail(at, where + ".clients names client " + std::to_string(c) + ", but there are "
                            + std::to_string(sc.clients.count) + " (ids 0 to "
                            + std::to_string(sc.clients.count - 1) + ")");
      if (duration >= 0)
        f.until_s = f.at_s + duration;
      if (at_version >= 0)
        f.at_version = static_cast<std::uint64_t>(at_version);
      bool crash = info(f.kind).crash;
      bool window = info(f.kind).window;
      if (crash && f.at_version && duration >= 0)
        return fail(at, where + " (" + kind + "): give at_s or at_version, not a duration");
      if (window && duration < 0)
        return fail(at, where + " (" + kind + ") needs duration_s (the window starts at at_s)");
      if (f.kind == fault_kind::client_crash && f.clients.empty())
        return fail(at, where + " (client_crash) needs 'clients' (crashing every client "
                                "leaves nobody to train)");
      if (crash && f.probability < 1.0)
        return fail(at, where + " (" + kind + ") fires once, at at_s or at_version: "
                                "'probability' is for message faults and, per task, "
                                "straggler_burst and client_dropout");
      if (f.kind == fault_kind::partition && f.probability < 1.0)
        return fail(at, where + " (partition) cuts every message of its window: "
                                "'probability' does not apply");
      sc.faults.faults.push_back(std::move(f));
    }
    return std::nullopt;
  }

  /// What the run records (run.json) and resume or a join node re-reads:
  /// the file with the settings written in, under a comment naming them.
  std::string with_settings(const YAML::Node& root) const {
    YAML::Emitter out;
    out << root;
    std::string joined;
    for (auto& st : settings_)
      joined += (joined.empty() ? "" : " ") + st;
    std::replace(joined.begin(), joined.end(), '\n', ' ');
    std::replace(joined.begin(), joined.end(), '\r', ' ');
    return "# with --set " + joined + "\n" + std::string(out.c_str()) + "\n";
  }

  /// Where a key is: its line in the file, or (below -1) the --set that
  /// gave it, so that errors point at what the user wrote.
  int line_at(const std::string& dotted, const YAML::Node& key) const {
    auto it = set_lines_.find(dotted);
    return it != set_lines_.end() ? it->second : key.Mark().line;
  }

  error fail(int line, const std::string& what) const {
    std::string where = path_;
    if (line >= 0)
      where += ":" + std::to_string(line + 1);
    else if (line <= -2)
      where += ", --set '" + shown(settings_[static_cast<std::size_t>(-2 - line)]) + "'";
    // (a message that quotes a huge value is cut, not echoed whole)
    auto text = what.size() <= 400 ? what
                                   : what.substr(0, 300) + "... (" + std::to_string(what.size())
                                       + " bytes of message cut)";
    return error{errc::bad_scenario, where + ": " + text};
  }

  std::optional<error> apply(const std::vector<field>& fields,
                             const std::string& dotted, const std::string& key,
                             int line, const YAML::Node& value) {
    for (auto& fd : fields)
      if (fd.key == key) {
        lines_[dotted] = line;
        if (auto what = fd.set(value))
          return fail(line, "key '" + dotted + "' " + *what);
        return std::nullopt;
      }
    std::string known;
    for (auto& fd : fields)
      known += (known.empty() ? "" : ", ") + fd.key;
    return fail(line, "unknown key '" + dotted + "' (known here: " + known + ")");
  }

  int line_of(const std::string& dotted) const {
    auto it = lines_.find(dotted);
    return it == lines_.end() ? -1 : it->second;
  }

  result<scenario> check(scenario sc) const {
    if (sc.model.width % sc.model.heads != 0)
      return fail(line_of("model.heads"),
                  "key 'model.heads' (" + std::to_string(sc.model.heads)
                    + ") must divide model.width ("
                    + std::to_string(sc.model.width) + ")");
    auto& f = sc.federation;
    if (sc.compute.workers_per_device != 0 && lines_.count("compute.workers"))
      return fail(line_of("compute.workers_per_device"),
                  "keys 'compute.workers' and 'compute.workers_per_device' both set: give one "
                  "(workers_per_device makes devices x workers_per_device workers)");
    {
      // compute.device's syntax here (file and line in the error); what the
      // machine has is checked when the run starts (models/device.cpp).
      auto& d = sc.compute.device;
      bool ok = d == "auto" || d == "cpu" || d == "cuda";
      if (!ok && d.rfind("cuda:", 0) == 0 && d.size() > 5) {
        ok = true;
        std::stringstream list(d.substr(5));
        for (std::string item; std::getline(list, item, ',');)
          ok = ok && !item.empty() && item.size() < 4
               && item.find_first_not_of("0123456789") == std::string::npos;
        ok = ok && d.back() != ',';
      }
      if (!ok)
        return fail(line_of("compute.device"),
                    "key 'compute.device' must be auto, cpu, cuda, cuda:N or cuda:N,M,..., got '"
                      + d + "'");
    }
    if (sc.model.family == "llama" && sc.model.width % sc.model.heads == 0
        && (sc.model.width / sc.model.heads) % 2 != 0)
      return fail(line_of("model.heads"),
                  "model.family llama needs an even head width (model.width / model.heads = "
                    + std::to_string(sc.model.width / sc.model.heads) + ") for rotary positions");
    if (sc.model.kv_heads != 0 && sc.model.family != "llama")
      return fail(line_of("model.kv_heads"),
                  "key 'model.kv_heads' is for model.family llama (grouped-query attention)");
    if (sc.model.kv_heads != 0 && sc.model.heads % sc.model.kv_heads != 0)
      return fail(line_of("model.kv_heads"),
                  "key 'model.kv_heads' (" + std::to_string(sc.model.kv_heads)
                    + ") must divide model.heads (" + std::to_string(sc.model.heads) + ")");
    if (sc.model.kind != "gpt" && sc.method.name != "fedprompt")
      return fail(line_of("model.kind"),
                  "key 'model.kind' " + sc.model.kind + " needs method.name fedprompt (the "
                    "whole parameter set is averaged), not " + sc.method.name);
    if (sc.model.kind != "gpt" && !sc.model.checkpoint.empty())
      return fail(line_of("model.checkpoint"),
                  "key 'model.checkpoint' is for model.kind gpt only");
    bool async = f.mode == "async";
    if (!lines_.count("federation.aggregator"))
      for (auto& row : strategies)
        if (row.async == async && row.default_for_mode)
          f.aggregator = row.name;
    if (strategy_named(f.aggregator).async != async) {
      std::string fits;
      for (auto& row : strategies)
        if (row.async == async)
          fits += (fits.empty() ? "" : " or ") + std::string(row.name);
      return fail(line_of("federation.aggregator"),
                  "key 'federation.aggregator' (" + f.aggregator + ") does not fit mode "
                    + f.mode + ": " + (async ? "async uses " : "sync rounds use ") + fits);
    }
    if (f.mode == "async" && sc.method.name != "fedsp" && sc.method.name != "fedprompt"
        && sc.method.name != "fedprompt_single")
      return fail(line_of("federation.mode"),
                  "key 'federation.mode': async needs an aggregating method (fedsp, fedprompt, "
                  "fedprompt_single), not " + sc.method.name);
    if (f.concurrency > sc.clients.count)
      return fail(line_of("federation.concurrency"),
                  "key 'federation.concurrency' (" + std::to_string(f.concurrency)
                    + ") exceeds clients.count (" + std::to_string(sc.clients.count) + ")");
    auto base_dir = fs::path(path_).parent_path().string();
    if (auto st = parse_staleness(f.staleness_text); st)
      f.staleness = st.value();
    else
      return fail(line_of("federation.staleness"),
                  "key 'federation.staleness' " + st.err().text);
    auto& c = sc.clients;
    struct dist_key {
      const char* key;
      std::string* text;
      distribution* out;
      double lo, hi;
    };
    for (auto& dk : {dist_key{"clients.speed", &c.speed, &c.speed_dist, 1e-6, 1e6},
                     dist_key{"clients.latency_s", &c.latency_s, &c.latency_dist, 0.0, 1e6},
                     dist_key{"clients.bandwidth_mbps", &c.bandwidth_mbps, &c.bandwidth_dist,
                              1e-6, 1e9}}) {
      auto d = parse_distribution(*dk.text, dk.lo, dk.hi, base_dir);
      if (!d)
        return fail(line_of(dk.key), std::string("key '") + dk.key + "' " + d.err().text);
      *dk.out = std::move(d).value();
    }
    if (auto av = parse_availability(c.availability_text, base_dir); av)
      c.online = std::move(av).value();
    else
      return fail(line_of("clients.availability"),
                  "key 'clients.availability' " + av.err().text);
    if (f.clients_per_round > sc.clients.count)
      return fail(line_of("federation.clients_per_round"),
                  "key 'federation.clients_per_round' ("
                    + std::to_string(f.clients_per_round)
                    + ") exceeds clients.count ("
                    + std::to_string(sc.clients.count) + ")");
    auto per_round = f.clients_per_round ? f.clients_per_round : sc.clients.count;
    if (f.quorum > per_round)
      return fail(line_of("federation.quorum"),
                  "key 'federation.quorum' (" + std::to_string(f.quorum)
                    + ") exceeds the clients selected per round ("
                    + std::to_string(per_round) + ")");
    auto anchor = [&](std::string& p) {
      fs::path path(p);
      if (!p.empty() && path.is_relative())
        p = (fs::path(path_).parent_path() / path).lexically_normal().string();
    };
    if (!sc.model.checkpoint.empty()) {
      anchor(sc.model.checkpoint);
      if (!fs::is_regular_file(sc.model.checkpoint) && !fs::is_directory(sc.model.checkpoint))
        return fail(line_of("model.checkpoint"),
                    "key 'model.checkpoint': no file or folder '" + sc.model.checkpoint + "'");
    }
    if (lines_.count("model.vocab_dir"))
      anchor(sc.model.vocab_dir);
    for (auto& ft : sc.faults.faults) {
      auto where = "faults[" + std::to_string(ft.index) + "] (" + to_string(ft.kind) + ")";
      if (ft.kind == fault_kind::worker_crash
          && (ft.worker == 0 || ft.worker >= sc.compute.workers))
        return fail(ft.line, where + ": worker " + std::to_string(ft.worker)
                               + " is not a client worker; with compute.workers "
                               + std::to_string(sc.compute.workers)
                               + " they are 1 to " + std::to_string(sc.compute.workers - 1)
                               + " (worker 0 runs the server's own work; at least 2 workers "
                                 "are needed)");
      if (ft.kind == fault_kind::server_crash && !sc.durability.checkpoints)
        return fail(ft.line, where + " needs durability.checkpoints: true (a restarted server "
                                     "goes on from its checkpoint)");
      if (ft.kind == fault_kind::message_delay && ft.delay_s > f.silence_s / 2)
        return fail(ft.line, where + ": delay_s (" + fmt_num(ft.delay_s)
                               + ") must be at most half of federation.silence_s ("
                               + fmt_num(f.silence_s)
                               + "), or delayed tasks are taken for lost");
    }
    if (f.rounds == 0 && sc.method.name != "zeroshot")
      return fail(line_of("federation.rounds"),
                  "key 'federation.rounds' must be at least 1 (0 only for method zeroshot)");
    if (sc.data.kind == "jsonl") {
      if (sc.data.dir.empty())
        return fail(line_of("data.kind"),
                    "key 'data.dir' is required when data.kind is jsonl");
      fs::path dir(sc.data.dir);
      if (dir.is_relative())
        dir = fs::path(path_).parent_path() / dir;
      sc.data.dir = dir.lexically_normal().string();
      for (const char* name : {"train.jsonl", "test.jsonl"})
        if (!fs::is_regular_file(dir / name))
          return fail(line_of("data.dir"), "key 'data.dir': missing file '"
                                             + (dir / name).string() + "'");
    } else if (sc.data.train < sc.clients.count) {
      return fail(line_of("data.train"),
                  "key 'data.train' (" + std::to_string(sc.data.train)
                    + ") gives some of the " + std::to_string(sc.clients.count)
                    + " clients no example");
    }
    return sc;
  }

  std::string path_;
  std::vector<std::string> settings_;
  std::map<std::string, int> set_lines_; // dotted key -> -2 - index in settings_
  std::map<std::string, int> lines_;
};

} // namespace

result<scenario> parse_scenario(const std::string& text,
                                const std::string& path) {
  return scenario_reader(path).read(text);
}

result<scenario> load_scenario(const std::string& path, const std::vector<std::string>& settings) {
  auto text = read_bounded_file(path, limits::scenario_bytes, "scenario file");
  if (!text)
    return error{errc::bad_scenario, path + ": " + text.err().text};
  return scenario_reader(path, settings).read(text.value());
}

} // namespace fedsp
