#include "actors/aggregator.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>

#include "models/device.hpp"
#include "runtime/fedavg.hpp"

namespace fedsp {

namespace {

const std::string self_name = "aggregator";

/// The checks of the header comment, in order; nullopt means accept.
std::optional<error> validate(const aggregator_state& st, const envelope& env,
                              const update_msg& up, const prompt_set& layout) {
  auto task = st.open.find(up.task_id);
  if (task == st.open.end())
    return st.closed.count(up.task_id)
             ? error{errc::task_closed, "task " + std::to_string(up.task_id)
                                          + " belongs to a closed round"}
             : error{errc::unknown_task,
                     "no open task " + std::to_string(up.task_id)};
  auto& ex = task->second.expect;
  if (up.client_id != ex.client_id || env.sender != client_name(ex.client_id))
    return error{errc::wrong_client,
                 "task " + std::to_string(up.task_id) + " belongs to "
                   + client_name(ex.client_id) + ", update claims "
                   + client_name(up.client_id) + " from '" + env.sender + "'"};
  if (task->second.answered)
    return error{errc::duplicate, "task " + std::to_string(up.task_id)
                                    + " already has an accepted update"};
  if (up.base_version > ex.base_version)
    return error{errc::future_version,
                 "base version " + std::to_string(up.base_version)
                   + " is newer than the task's "
                   + std::to_string(ex.base_version)};
  if (up.base_version != ex.base_version)
    return error{errc::malformed, "base version "
                                    + std::to_string(up.base_version)
                                    + " differs from the task's "
                                    + std::to_string(ex.base_version)};
  if (st.max_staleness > 0 && st.version > ex.base_version
      && st.version - ex.base_version > st.max_staleness)
    return error{errc::task_closed, "update is " + std::to_string(st.version - ex.base_version)
                                      + " versions stale, the bound is "
                                      + std::to_string(st.max_staleness)};
  if (auto err = check_layout(layout, up.prompts))
    return err;
  // (finite values and consistent shapes: checked by decode already)
  if (up.num_samples == 0)
    return error{errc::malformed, "update reports zero samples"};
  return std::nullopt;
}

/// Sum of squares of n floats, in double (the norm check's one pass).
__attribute__((target_clones("avx2", "default"))) double sum_squares(const float* p,
                                                                     std::size_t n) {
  double total = 0;
  constexpr std::size_t block = 4096; // float partial sums stay exact enough per block
  for (std::size_t lo = 0; lo < n; lo += block) {
    float s = 0;
    auto hi = std::min(n, lo + block);
    for (auto i = lo; i < hi; ++i)
      s += p[i] * p[i];
    total += s;
  }
  return total;
}

/// An update far out of line with its base (docs/faults.md, "Outliers"):
/// the norm of its prompts over `ratio` times the norm of the prompts it
/// started from. A flipped exponent bit or a hostile client's scaled
/// update, which the decoder cannot tell from a number, would otherwise be
/// folded in and poison every later version.
std::optional<error> check_outlier(aggregator_state& st, double ratio,
                                   const std::shared_ptr<const prompt_set>& base,
                                   const prompt_set& up, const std::vector<const float*>& in_place) {
  if (ratio <= 0 || !base)
    return std::nullopt;
  auto& kept = st.base_norms;
  auto hit = std::find_if(kept.begin(), kept.end(),
                          [&](const auto& e) { return e.first.lock() == base; });
  if (hit == kept.end()) {
    double bb = 0;
    for (auto& t : base->tensors)
      bb += sum_squares(t.data.data(), t.data.size());
    if (kept.size() == aggregator_state::base_norms_kept)
      kept.pop_back(); // the least recently used
    kept.insert(kept.begin(), {base, std::sqrt(bb)});
  } else if (hit != kept.begin()) {
    std::rotate(kept.begin(), hit, hit + 1);
  }
  double base_norm = kept.front().second;
  if (base_norm <= 0) // (a base of zeros: nothing to compare against)
    return std::nullopt;
  double uu = 0;
  for (std::size_t t = 0; t < up.tensors.size(); ++t)
    uu += in_place.empty() ? sum_squares(up.tensors[t].data.data(), up.tensors[t].data.size())
                           : sum_squares(in_place[t], up.tensors[t].numel());
  auto norm = std::sqrt(uu);
  if (std::isfinite(norm) && norm <= ratio * base_norm)
    return std::nullopt;
  char text[160];
  std::snprintf(text, sizeof text,
                "update prompts' norm %.4g is over %g times their base's %.4g "
                "(federation.max_update_ratio)",
                norm, ratio, base_norm);
  return error{errc::outlier, text};
}

template <class T> std::string_view bytes_of(const T& v) {
  return {reinterpret_cast<const char*>(&v), sizeof v};
}

template <class T> bool take(std::string_view& in, T& v) {
  if (in.size() < sizeof v)
    return false;
  std::memcpy(&v, in.data(), sizeof v);
  in.remove_prefix(sizeof v);
  return true;
}

// Record layouts: 'B' id(u64) <EvalRequest envelope with the prompts>
//                 'U' round(u32) staleness(u64) base(u64) keep(u8) <the Update's wire bytes>
constexpr char base_tag = 'B', update_tag = 'U';

} // namespace

result<wal_entry> parse_wal_record(std::string_view in) {
  auto bad = [](const std::string& what) { return error{errc::malformed, "log record: " + what}; };
  char tag = 0;
  if (!take(in, tag))
    return bad("empty");
  if (tag == base_tag) {
    wal_base b;
    if (!take(in, b.id))
      return bad("truncated base");
    auto env = decode_bytes(in.data(), in.size());
    if (!env)
      return bad("base " + std::to_string(b.id) + ": " + env.err().message());
    auto* req = std::get_if<eval_request_msg>(&env.value().body);
    if (req == nullptr)
      return bad("base " + std::to_string(b.id) + " holds no prompts");
    b.prompts = std::move(req->prompts);
    return wal_entry{std::move(b)};
  }
  if (tag != update_tag)
    return bad(std::string("unknown record type '") + tag + "'");
  wal_update u;
  std::uint8_t keep = 0;
  if (!take(in, u.round) || !take(in, u.staleness) || !take(in, u.base) || !take(in, keep))
    return bad("truncated update header");
  u.keep = keep != 0;
  auto env = decode_bytes(in.data(), in.size());
  if (!env)
    return bad("update: " + env.err().message());
  auto* up = std::get_if<update_msg>(&env.value().body);
  if (up == nullptr)
    return bad("not an update");
  u.update = std::move(*up);
  return wal_entry{std::move(u)};
}

/// The task ids of the updates held, in order (for events).
json held_ids(const aggregator_state& st) {
  json ids = json::array{};
  for (auto& h : st.held)
    ids.as_array().push_back(h.task_id);
  return ids;
}

std::size_t logged_updates(const std::vector<std::string>& records) {
  std::size_t n = 0;
  for (auto& rec : records)
    n += !rec.empty() && rec[0] == update_tag;
  return n;
}

aggregator_actor::behavior_type
aggregator(aggregator_actor::stateful_pointer<aggregator_state> self, context_ptr ctx,
           prompt_set layout, aggregator_options opts) {
  auto& st0 = self->state;
  st0.staleness = opts.staleness;
  st0.next_base_id = (std::uint64_t{std::random_device{}()} << 32) ^ std::random_device{}();
  // Updates accepted by an earlier process: held again, in their order,
  // with the arithmetic they had then.
  std::map<std::uint64_t, std::shared_ptr<const prompt_set>> bases;
  for (auto& rec : opts.replay) {
    auto entry = parse_wal_record(rec);
    if (!entry) {
      ctx->log->error("aggregator: skipping a log record: {}", entry.err().message());
      continue;
    }
    if (auto* b = std::get_if<wal_base>(&entry.value())) {
      bases[b->id] = std::make_shared<const prompt_set>(std::move(b->prompts));
      continue;
    }
    auto& w = std::get<wal_update>(entry.value());
    auto& up = w.update;
    aggregator_state::held_update h;
    h.task_id = up.task_id;
    h.client_id = up.client_id;
    h.round = w.round;
    h.staleness = w.staleness;
    h.num_samples = static_cast<double>(up.num_samples);
    h.metrics = up.metrics;
    if (w.keep || w.base == 0)
      h.prompts = up.prompts;
    if (w.base != 0) {
      auto b = bases.find(w.base);
      if (b == bases.end()) {
        ctx->log->error("aggregator: skipping logged update of task {}: its base is not in the log",
                        h.task_id);
        continue;
      }
      h.base = b->second;
      if (auto err = st0.sum.add(h.task_id, h.num_samples, h.staleness, h.base,
                                 std::move(up.prompts), st0.staleness)) {
        ctx->log->error("aggregator: skipping logged update of task {}: {}", h.task_id,
                        err->message());
        continue;
      }
    }
    st0.replayed.insert(h.task_id);
    ctx->event("update_replayed", json::object{{"task", h.task_id},
                                               {"client", h.client_id},
                                               {"round", h.round},
                                               {"staleness", h.staleness}});
    st0.held.push_back(std::move(h));
  }
  if (!opts.wal_dir.empty()) {
    auto wal = record_log::open(opts.wal_dir, opts.sync_each);
    if (!wal) {
      ctx->log->error("aggregator: {}", wal.err().message());
      self->quit(caf::make_error(caf::sec::runtime_error, wal.err().message()));
    } else {
      st0.wal = std::move(wal).value();
      // Replayed records stay in their old segments, all below this one.
      st0.wal_consumed = 0;
    }
  }
  // `task` goes back to the sender only when the task is its own; the event
  // names the task the update claimed (`about`) either way.
  auto reject = [=](const error& err, std::uint64_t task, const std::string& from,
                    std::uint64_t about = 0) {
    ctx->event("reject", json::object{{"by", self_name},
                                      {"from", from},
                                      {"task", about != 0 ? about : task},
                                      {"reason", to_string(err.code)},
                                      {"text", err.text}});
    ctx->log->warn("aggregator rejected an update from '{}': {}", from,
                   err.message());
    // Updates that keep coming back bad (a poisoned version every client
    // trains into NaN, a client that diverges) would keep the run busy for
    // ever without a version: it stops, naming why (docs/faults.md).
    auto& st = self->state;
    if (err.code == errc::malformed || err.code == errc::non_finite
        || err.code == errc::outlier) {
      ++st.refused_in_a_row;
      if (opts.max_refused_in_a_row > 0 && st.refused_in_a_row == opts.max_refused_in_a_row)
        ctx->stop_on(std::to_string(st.refused_in_a_row)
                     + " updates in a row were refused as malformed, non-finite or outliers"
                       " (the last: "
                     + err.message() + ") at version " + std::to_string(st.version)
                     + ": the federation makes no progress, so the run stops"
                       " (federation.max_refused_in_a_row)",
                     err.code);
    }
    return ctx->seal(envelope{self_name, reject_msg{err.code, err.text, task}});
  };
  // Everything held is folded or discarded: the segment is consumed.
  auto rotate_log = [=](aggregator_state& st) {
    if (!st.wal)
      return;
    auto closed = st.wal->rotate();
    st.wal_bases.clear();
    if (closed)
      st.wal_consumed = closed.value();
    else
      ctx->log->error("aggregator: {}", closed.err().message());
  };
  return {
    [=](open_atom, const task_expectation& ex) {
      // A task id is opened once: one that is open or whose update an
      // earlier process accepted (the log replayed it) would let one task be
      // folded twice. Its update is refused as unknown_task.
      auto& st = self->state;
      if (st.open.count(ex.task_id) || st.replayed.count(ex.task_id)) {
        ctx->log->warn("aggregator: task {} opened again; refusing it (its update was "
                        "already accepted)", ex.task_id);
        return;
      }
      st.open[ex.task_id] = aggregator_state::open_task{ex, false};
    },
    [=](version_atom, std::uint64_t version, std::uint32_t bound, const staleness_fn& s) {
      self->state.version = version;
      self->state.max_staleness = bound;
      self->state.staleness = s;
    },
    [=](wire_buffer& buf) -> wire_buffer {
      // An update's f32 prompts are read where they lie (in this process,
      // the client's own buffers: no copy); anything else is decoded.
      envelope env;
      std::vector<const float*> in_place;
      if (auto view = decode_update_in_place(buf)) {
        env.sender = std::move(view.value().sender);
        env.body = std::move(view.value().msg);
        in_place = std::move(view.value().data);
      } else if (view.err().code != errc::unsupported) {
        return reject(view.err(), 0, "?");
      } else {
        auto decoded = decode(buf);
        if (!decoded)
          return reject(decoded.err(), 0, "?");
        env = std::move(decoded).value();
      }
      auto* up = std::get_if<update_msg>(&env.body);
      if (up == nullptr)
        return reject(error{errc::unsupported,
                            std::string("aggregator takes update, got ")
                              + kind_name(env.body)},
                      0, env.sender);
      if (auto err = validate(self->state, env, *up, layout)) {
        // A rejection for a task that is not this sender's must not disturb
        // the real owner's task.
        bool own = self->state.open.count(up->task_id)
                   && self->state.open[up->task_id].expect.client_id == up->client_id
                   && env.sender == client_name(up->client_id)
                   && err->code != errc::duplicate;
        return reject(*err, own ? up->task_id : 0, env.sender, up->task_id);
      }
      if (auto err = check_outlier(self->state, opts.max_update_ratio,
                                   self->state.open[up->task_id].expect.base, up->prompts,
                                   in_place))
        return reject(*err, up->task_id, env.sender, up->task_id);
      auto& task = self->state.open[up->task_id];
      task.answered = true;
      auto round = task.expect.round;
      auto expect = task.expect;
      auto task_id = up->task_id;
      auto client = up->client_id;
      auto& st = self->state;
      aggregator_state::held_update h;
      h.task_id = task_id;
      h.client_id = client;
      h.round = round;
      h.staleness = st.version > expect.base_version ? st.version - expect.base_version : 0;
      h.num_samples = static_cast<double>(up->num_samples);
      h.base = expect.base;
      h.metrics = std::move(up->metrics);
      // Versions change only by folding, so the staleness (and the weight)
      // is final now: the delta goes into the running sum at once.
      if (expect.keep_prompts || !expect.base) {
        h.prompts = up->prompts;
        for (std::size_t t = 0; t < in_place.size(); ++t) // (read in place: copied here)
          h.prompts->tensors[t].data.assign(in_place[t],
                                            in_place[t] + h.prompts->tensors[t].numel());
      }
      if (st.wal) { // logged before it counts and before the Ack
        std::optional<error> err;
        std::uint64_t base_id = 0;
        if (expect.base) {
          auto it = st.wal_bases.find(expect.base.get());
          if (it == st.wal_bases.end()) { // its prompts, once per segment
            base_id = ++st.next_base_id;
            auto b = encode(envelope{"wal", eval_request_msg{expect.base_version, *expect.base,
                                                             "base"}});
            std::vector<std::string_view> parts{{&base_tag, 1}, bytes_of(base_id)};
            b.for_each_piece([&](const char* p, std::size_t n) { parts.emplace_back(p, n); });
            err = st.wal->append(parts);
            if (!err)
              st.wal_bases[expect.base.get()] = {expect.base, base_id};
          } else {
            base_id = it->second.second;
          }
        }
        if (!err) {
          std::uint8_t keep = expect.keep_prompts ? 1 : 0;
          std::vector<std::string_view> parts{{&update_tag, 1}, bytes_of(round),
                                              bytes_of(h.staleness), bytes_of(base_id),
                                              bytes_of(keep)};
          buf.for_each_piece([&](const char* p, std::size_t n) { parts.emplace_back(p, n); });
          err = st.wal->append(parts);
        }
        if (err) { // not logged, so not accepted; and the run stops
          task.answered = false;
          ctx->stop_on("write-ahead log: " + err->text
                       + "; the run stops (free the space, then 'fedsp resume')");
          return reject(*err, task_id, env.sender, task_id);
        }
      }
      auto received_bytes = buf.size_bytes();
      if (expect.base) {
        // Read in place, the message itself is kept until the sum takes it in.
        auto err = in_place.empty()
                     ? st.sum.add(task_id, h.num_samples, h.staleness, expect.base,
                                  std::move(up->prompts), st.staleness)
                     : st.sum.add_in_place(task_id, h.num_samples, h.staleness, expect.base,
                                           up->prompts, std::move(in_place),
                                           std::make_shared<const wire_buffer>(std::move(buf)),
                                           st.staleness);
        if (err) {
          task.answered = false;
          return reject(*err, task_id, env.sender, task_id);
        }
      }
      // After the log, before the Ack, handed to the kernel at once: an
      // acknowledged update always has its `update` event (check sees a
      // logged update that a damaged log lost).
      ctx->event("update",
                 json::object{{"task", task_id},
                              {"client", client},
                              {"round", round},
                              {"base_version", expect.base_version},
                              {"staleness", h.staleness},
                              {"num_samples", h.num_samples},
                              {"loss_before", metric_or(h.metrics, "loss_before", NAN)},
                              {"loss_after", metric_or(h.metrics, "loss_after", NAN)},
                              {"device", device_name(metric_or(h.metrics, "device_index", NAN))},
                              {"wall_transfer_s", metric_or(h.metrics, "transfer_seconds", 0)}},
                 true);
      st.held.push_back(std::move(h));
      st.refused_in_a_row = 0;
      auto ack = ctx->seal(envelope{self_name, ack_msg{task_id}});
      if (ctx->traffic != nullptr) {
        ctx->traffic->from_client(client, received_bytes);
        ctx->traffic->to_client(client, ack.size_bytes());
      }
      return ack;
    },
    [=](close_atom, const aggregate_request& req) {
      auto& st = self->state;
      aggregate_outcome out;
      // Close the round's tasks: later updates for them are task_closed.
      if (req.round != 0 && req.close_round)
        for (auto it = st.open.begin(); it != st.open.end();) {
          if (it->second.expect.round == req.round) {
            st.closed.insert(it->first);
            it = st.open.erase(it);
          } else {
            ++it;
          }
        }
      double before = 0, after = 0, seconds = 0, flops = 0;
      for (auto& h : st.held) {
        out.updates.push_back(h.task_id);
        out.staleness.push_back(h.staleness);
        if (h.prompts)
          out.per_client.emplace_back(h.client_id, *h.prompts);
        before += metric_or(h.metrics, "loss_before", 0);
        after += metric_or(h.metrics, "loss_after", 0);
        seconds += metric_or(h.metrics, "train_seconds", 0);
        flops += metric_or(h.metrics, "flops", 0);
      }
      auto n_held = st.held.size();
      auto needed = std::max<std::uint32_t>(req.min_updates, 1);
      result<prompt_set> folded = error{errc::empty_input, "nothing folded"};
      if (n_held < needed) {
        out.note = (req.round ? "round " + std::to_string(req.round) + ": " : std::string())
                   + std::to_string(n_held) + " update(s), " + std::to_string(needed)
                   + " needed";
      } else if (strategy_named(req.strategy).keeps_update_prompts) { // fedasync: mixed one by one
        folded = *req.current;
        for (auto& h : st.held) {
          if (!h.prompts) {
            folded = error{errc::unsupported, "fedasync needs the updates' prompts kept"};
            break;
          }
          stale_update in{h.task_id, h.num_samples, h.staleness,
                          h.base ? h.base.get() : req.current.get(), &*h.prompts};
          folded = mix_async(folded.value(), in, req.staleness, req.alpha);
          if (!folded)
            break;
        }
      } else if (st.sum.count() == n_held) {
        folded = st.sum.apply(*req.current, req.eta);
      } else { // updates without a base: fold them as a batch against `current`
        std::vector<stale_update> inputs;
        for (auto& h : st.held)
          inputs.push_back({h.task_id, h.num_samples, h.staleness,
                            h.base ? h.base.get() : req.current.get(), &*h.prompts});
        folded = fold_buffered(*req.current, inputs, req.staleness, req.eta);
      }
      if (n_held >= needed && !folded)
        out.note = folded.err().message();
      if (n_held >= needed && folded) {
        out.has_result = true;
        out.prompts = std::move(folded).value();
        auto n = static_cast<double>(n_held);
        out.mean_loss_before = before / n;
        out.mean_loss_after = after / n;
        out.mean_train_seconds = seconds / n;
        out.mean_flops = flops / n;
        json::array ids, taus;
        for (std::size_t i = 0; i < out.updates.size(); ++i) {
          ids.emplace_back(static_cast<double>(out.updates[i]));
          taus.emplace_back(static_cast<double>(out.staleness[i]));
        }
        ctx->event("aggregate", json::object{{"round", req.round},
                                             {"strategy", req.strategy},
                                             {"updates", json(std::move(ids))},
                                             {"staleness", json(std::move(taus))},
                                             {"mean_loss_before", out.mean_loss_before},
                                             {"mean_loss_after", out.mean_loss_after}});
        st.held.clear(); // each accepted update is folded exactly once
        st.sum.clear();
        rotate_log(st);
      } else if (req.round != 0 && req.close_round) {
        // A failed sync round: what it accepted is dropped with it (late
        // updates are refused in this mode, so that is everything held).
        out.discarded = n_held;
        if (n_held > 0)
          ctx->event("updates_discarded", json::object{{"round", req.round}, {"count", n_held},
                                                       {"tasks", held_ids(st)},
                                                       {"reason", out.note}});
        st.held.clear();
        st.sum.clear();
        rotate_log(st);
        out.updates.clear();
        out.staleness.clear();
        out.per_client.clear();
      } else {
        out.updates.clear(); // kept for the next aggregation
        out.staleness.clear();
        out.per_client.clear();
      }
      out.held = st.held.size();
      out.wal_consumed = st.wal_consumed;
      return out;
    },
  };
}

} // namespace fedsp
