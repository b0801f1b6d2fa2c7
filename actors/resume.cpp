#include "actors/resume.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <variant>

#include "actors/aggregator.hpp"
#include "runtime/files.hpp"

namespace fedsp {

std::string task_list(const std::vector<std::uint64_t>& ids) {
  std::string out;
  for (std::size_t i = 0; i < ids.size() && i < 10; ++i)
    out += (i ? ", " : "") + std::to_string(ids[i]);
  if (ids.size() > 10)
    out += ", ... (" + std::to_string(ids.size()) + " in all)";
  return out;
}

result<resume_point> read_resume_point(const std::string& dir, bool salvage) {
  resume_point rp;
  auto path = dir + "/checkpoint.bin";
  auto events_path = dir + "/events.jsonl";
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) {
    auto bytes = read_bounded_file(path, limits::checkpoint_bytes, "checkpoint");
    if (!bytes)
      return bytes.err();
    auto ck = decode_checkpoint(bytes.value(), path);
    if (!ck)
      return ck.err();
    for (auto* key : {"version", "round", "t", "next_task", "counters", "rounds", "initial_eval",
                      "last_eval", "last_eval_version", "distillation"})
      if (ck.value().state.find(key) == nullptr)
        return error{errc::malformed, "checkpoint '" + path + "' lacks '" + key + "'"};
    rp.ck = std::move(ck).value();
    rp.first_task = static_cast<std::uint64_t>(number_or(rp.ck->state, "next_task", 0));
  } else if (ec) {
    return error{errc::io, "cannot read " + path + ": " + ec.message()};
  } else {
    rp.notes.push_back("no checkpoint yet: starting from version 0");
  }
  auto after = rp.ck ? static_cast<std::uint64_t>(number_or(rp.ck->state, "wal_consumed", 0)) : 0;
  auto log = read_log(dir + "/wal", after, salvage);
  if (!log)
    return log.err();
  rp.torn = log.value().notes.size() - log.value().damaged;
  for (auto& note : log.value().notes)
    rp.notes.push_back(note);
  std::set<std::uint64_t> logged, bases;
  std::vector<std::string> records;
  for (auto& rec : log.value().records) {
    auto w = parse_wal_record(rec);
    if (!w)
      return error{errc::malformed, dir + "/wal: " + w.err().message()};
    if (auto* b = std::get_if<wal_base>(&w.value()))
      bases.insert(b->id);
    if (auto* u = std::get_if<wal_update>(&w.value())) {
      auto id = u->update.task_id;
      rp.first_task = std::max(rp.first_task, id);
      // An update is folded against the base prompts its task was sent,
      // logged once per segment ahead of it. If that record was damaged
      // (and dropped by --salvage), the update cannot be replayed: it is
      // not logged, so an acknowledged one is counted as lost below.
      if (u->base != 0 && !bases.count(u->base)) {
        rp.notes.push_back("task " + std::to_string(id)
                           + ": its base prompts are not in the log; the update is dropped");
        continue;
      }
      if (!logged.insert(id).second) {
        if (!salvage)
          return error{errc::malformed,
                       dir + "/wal: task " + std::to_string(id)
                         + " is logged twice (a segment copied?); resuming would fold it twice. "
                           "'fedsp resume --salvage' keeps the first"};
        rp.notes.push_back("task " + std::to_string(id) + " logged twice: the second dropped");
        continue;
      }
    }
    records.push_back(std::move(rec));
  }
  rp.replay = std::move(records);
  // events.jsonl: the task ids handed out, the versions announced, the
  // updates acknowledged and where each went.
  if (!std::filesystem::exists(events_path, ec)) {
    if (ec)
      return error{errc::io, "cannot read " + events_path + ": " + ec.message()};
    if (rp.ck || !rp.replay.empty())
      return error{errc::malformed, events_path + " is missing: the run's record of what it "
                                                  "acknowledged and published is gone; it "
                                                  "cannot be resumed safely"};
  }
  std::ifstream in;
  if (std::filesystem::exists(events_path, ec)) {
    auto opened = open_bounded_file(events_path, limits::events_bytes, "event log");
    if (!opened)
      return opened.err();
    in = std::move(opened).value();
  }
  std::set<std::uint64_t> accepted, accounted;
  double last_published = -1;
  std::string line;
  line_reader lines(in, events_path);
  while (lines.next(line)) {
    auto ev = json::parse(line);
    if (!ev)
      continue; // a torn last line
    auto* type = ev.value().find("type");
    if (type == nullptr || !type->is_string())
      continue;
    auto& t = type->as_string();
    auto& e = ev.value();
    auto ids = [&](const char* key, std::set<std::uint64_t>& into) {
      if (auto* a = e.find(key); a != nullptr && a->is_array())
        for (auto& v : a->as_array())
          if (v.is_number() && v.as_number() >= 0)
            into.insert(static_cast<std::uint64_t>(v.as_number()));
    };
    if (t == "task") {
      rp.first_task = std::max(rp.first_task, static_cast<std::uint64_t>(number_or(e, "task", 0)));
    } else if (t == "update" || t == "update_replayed") {
      if (auto task = number_or(e, "task", -1); task >= 0)
        accepted.insert(static_cast<std::uint64_t>(task));
    } else if (t == "publish") {
      auto v = number_or(e, "version", -1);
      rp.published.insert(v);
      last_published = std::max(last_published, v);
      ids("updates", accounted);
    } else if (t == "updates_discarded" || t == "updates_lost") {
      ids("tasks", accounted);
    } else if (t == "fault") {
      auto* kind = e.find("kind");
      auto k = kind != nullptr && kind->is_string() ? fault_kind_named(kind->as_string())
                                                    : std::nullopt;
      if (k && info(*k).crash) // (crashes fire once)
        rp.fired.insert(static_cast<std::size_t>(number_or(e, "index", 0)));
    }
  }
  if (auto err = lines.failure())
    return *err;
  auto ck_version = rp.ck ? number_or(rp.ck->state, "version", 0) : 0.0;
  if (last_published > ck_version)
    return error{errc::malformed,
                 events_path + " announced version " + std::to_string(static_cast<long long>(last_published))
                   + " but " + (rp.ck ? "checkpoint.bin holds version "
                                          + std::to_string(static_cast<long long>(ck_version))
                                      : std::string("there is no checkpoint.bin"))
                   + ": resuming would fold its updates again; the checkpoint was deleted or "
                     "replaced"};
  if (rp.ck)
    if (auto* pub = rp.ck->state.find("publish"); pub != nullptr && pub->is_object())
      if (auto* a = pub->find("updates"); a != nullptr && a->is_array())
        for (auto& v : a->as_array())
          if (v.is_number())
            accounted.insert(static_cast<std::uint64_t>(v.as_number()));
  for (auto id : accepted)
    if (!accounted.count(id) && !logged.count(id))
      rp.lost.push_back(id);
  if (!rp.lost.empty() && !salvage)
    return error{errc::malformed,
                 std::to_string(rp.lost.size()) + " acknowledged update(s) are not in "
                   + dir + "/wal (task " + task_list(rp.lost)
                   + "): the log was damaged, cut short or deleted. 'fedsp resume --salvage' "
                     "goes on without them and records them as lost"};
  return rp;
}

} // namespace fedsp
