#include "runtime/run_check.hpp"

#include <cerrno>
#include <cmath>
#include <sys/stat.h>
#include <filesystem>
#include <fstream>
#include <optional>
#include <map>
#include <set>
#include <sstream>

#include "runtime/files.hpp"
#include "runtime/json.hpp"

namespace fedsp {

namespace {

double num(const json& j, const char* key, double fallback = -1) {
  auto* v = j.find(key);
  return v != nullptr && v->is_number() ? v->as_number() : fallback;
}

/// A task id or version: a whole number in [0, 2^53] (what JSON numbers
/// carry exactly), else nullopt.
std::optional<std::uint64_t> count_of(const json& v) {
  if (!v.is_number())
    return std::nullopt;
  double d = v.as_number();
  if (!(d >= 0) || d > 9007199254740992.0 || d != std::floor(d))
    return std::nullopt;
  return static_cast<std::uint64_t>(d);
}

} // namespace

result<run_check> check_run(const std::string& dir) {
  auto events_path = dir + "/events.jsonl";
  struct stat sb {};
  if (::stat(events_path.c_str(), &sb) != 0 && errno == ENOENT)
    return error{errc::io, "no events.jsonl in '" + dir + "'"};
  auto opened = open_bounded_file(events_path, limits::events_bytes, "event log");
  if (!opened)
    return opened.err(); // unreadable, a FIFO, a folder, too large: said as such
  auto& in = opened.value();
  run_check rc;
  std::set<std::uint64_t> accepted;
  std::map<std::uint64_t, std::uint64_t> folded_in; // task -> version
  std::uint64_t discarded = 0, lost = 0;
  std::string line;
  std::size_t line_no = 0;
  bool first = true;
  line_reader lines(in, events_path);
  while (lines.next(line)) {
    line_no = lines.number();
    auto ev = json::parse(line);
    if (!ev) {
      rc.violations.push_back("events.jsonl:" + std::to_string(line_no) + ": not JSON");
      continue;
    }
    auto* type = ev.value().find("type");
    if (type == nullptr || !type->is_string())
      continue;
    auto& t = type->as_string();
    auto& e = ev.value();
    auto where = "events.jsonl:" + std::to_string(line_no) + ": ";
    auto field = [&](const char* key) -> std::optional<std::uint64_t> {
      auto* v = e.find(key);
      auto n = v != nullptr ? count_of(*v) : std::nullopt;
      if (!n)
        rc.violations.push_back(where + "'" + t + "' event without a whole '" + key + "'");
      return n;
    };
    if (t == "update" || t == "update_replayed") {
      if (auto task = field("task"))
        accepted.insert(*task);
    } else if (t == "updates_discarded") {
      discarded += static_cast<std::uint64_t>(num(e, "count", 0));
    } else if (t == "updates_lost") { // fedsp resume --salvage
      auto n = static_cast<std::uint64_t>(num(e, "count", 0));
      lost += n;
      rc.violations.push_back(where + std::to_string(n)
                              + " acknowledged update(s) lost: the write-ahead log was damaged "
                                "and 'fedsp resume --salvage' went on without them");
    } else if (t == "fault") {
      ++rc.faults;
    } else if (t == "resumed") {
      ++rc.resumes;
    } else if (t == "publish") {
      auto version = field("version");
      if (!version)
        continue;
      auto v = *version;
      if (!first && v != rc.last_version + 1)
        rc.violations.push_back("events.jsonl:" + std::to_string(line_no) + ": version "
                                + std::to_string(v) + " published after "
                                + std::to_string(rc.last_version));
      first = false;
      rc.last_version = v;
      ++rc.versions;
      if (auto* ups = e.find("updates"); ups != nullptr && ups->is_array())
        for (auto& u : ups->as_array()) {
          auto task = count_of(u);
          if (!task) {
            rc.violations.push_back(where + "version " + std::to_string(v)
                                    + " lists an update that is not a task id");
            continue;
          }
          auto id = *task;
          auto [it, fresh] = folded_in.emplace(id, v);
          if (!fresh)
            rc.violations.push_back("update of task " + std::to_string(id)
                                    + " folded into version " + std::to_string(it->second)
                                    + " and again into version " + std::to_string(v));
        }
    }
  }
  if (auto err = lines.failure())
    return *err;
  rc.accepted = accepted.size();
  rc.folded = folded_in.size();
  for (auto id : accepted)
    rc.unfolded += folded_in.count(id) == 0;
  for (auto& [id, v] : folded_in)
    if (!accepted.count(id))
      rc.violations.push_back("task " + std::to_string(id) + " folded into version "
                              + std::to_string(v) + " without an accepted update");
  auto summary_path = dir + "/summary.json";
  errno = 0;
  bool has_summary = ::stat(summary_path.c_str(), &sb) == 0 || errno != ENOENT;
  auto summary_text = has_summary ? read_bounded_file(summary_path, limits::summary_bytes, "summary")
                                  : result<std::string>(std::string());
  if (!summary_text)
    return summary_text.err();
  if (has_summary) {
    auto summary = json::parse(summary_text.value());
    if (!summary) {
      rc.violations.push_back("summary.json is not JSON");
    } else {
      rc.finished = true;
      auto& s = summary.value();
      rc.allowed_unfolded = static_cast<std::uint64_t>(num(s, "updates_pending", 0)) + discarded
                            + lost; // (each loss is a violation of its own)
      auto final_version = static_cast<std::uint64_t>(num(s, "final_version", 0));
      if (line_no == 0)
        rc.violations.push_back("events.jsonl is empty, but summary.json says the run finished");
      if ((rc.versions > 0 || final_version > 0) && final_version != rc.last_version)
        rc.violations.push_back("summary.json says version " + std::to_string(final_version)
                                + ", the last publish event " + std::to_string(rc.last_version));
    }
  } else {
    rc.violations.push_back("the run did not finish (no summary.json)");
  }
  if (rc.finished && rc.unfolded > rc.allowed_unfolded)
    rc.violations.push_back(std::to_string(rc.unfolded)
                            + " accepted update(s) were never folded, but the run reports only "
                            + std::to_string(rc.allowed_unfolded) + " pending or discarded");
  return rc;
}

} // namespace fedsp
