#include "actors/aggregator.hpp"

#include <cstring>

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

template <class T> void put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}

void put_envelope(std::string& out, const envelope& env) {
  auto buf = encode(env);
  put(out, static_cast<std::uint64_t>(buf.size_bytes()));
  out.append(reinterpret_cast<const char*>(buf.bytes()), buf.size_bytes());
}

/// u - b, element by element (same layout: validated before).
prompt_set delta_of(const prompt_set& u, const prompt_set& b) {
  prompt_set d = u;
  for (std::size_t i = 0; i < d.tensors.size(); ++i) {
    auto& x = d.tensors[i].data;
    auto& y = b.tensors[i].data;
    for (std::size_t j = 0; j < x.size(); ++j)
      x[j] -= y[j];
  }
  return d;
}

prompt_set zeros_like(const prompt_set& layout) {
  prompt_set z = layout;
  for (auto& t : z.tensors)
    t.data.assign(t.numel(), 0.f);
  return z;
}

} // namespace

std::string wal_record(const update_msg& delta, std::uint32_t round, std::uint64_t staleness,
                       bool has_base, const prompt_set* kept) {
  std::string out;
  put(out, static_cast<std::uint32_t>(kept != nullptr ? 2 : 1));
  update_msg a{delta.task_id, delta.client_id, delta.base_version, delta.prompts,
               delta.num_samples, delta.metrics};
  a.metrics.push_back({"wal_round", static_cast<double>(round)});
  a.metrics.push_back({"wal_staleness", static_cast<double>(staleness)});
  a.metrics.push_back({"wal_has_base", has_base ? 1.0 : 0.0});
  put_envelope(out, envelope{"wal", std::move(a)});
  if (kept != nullptr)
    put_envelope(out, envelope{"wal", update_msg{delta.task_id, delta.client_id,
                                                 delta.base_version, *kept, delta.num_samples,
                                                 {}}});
  return out;
}

result<wal_update> parse_wal_record(std::string_view in) {
  auto bad = [](const std::string& what) { return error{errc::malformed, "log record: " + what}; };
  std::uint32_t n = 0;
  if (in.size() < 4)
    return bad("truncated");
  std::memcpy(&n, in.data(), 4);
  in.remove_prefix(4);
  if (n != 1 && n != 2)
    return bad(std::to_string(n) + " messages, 1 or 2 expected");
  std::vector<update_msg> ups;
  for (std::uint32_t i = 0; i < n; ++i) {
    std::uint64_t len = 0;
    if (in.size() < 8)
      return bad("truncated");
    std::memcpy(&len, in.data(), 8);
    in.remove_prefix(8);
    if (in.size() < len)
      return bad("truncated message");
    auto env = decode_bytes(in.data(), len);
    if (!env)
      return bad(env.err().message());
    auto* up = std::get_if<update_msg>(&env.value().body);
    if (up == nullptr)
      return bad("not an update");
    ups.push_back(std::move(*up));
    in.remove_prefix(len);
  }
  wal_update w;
  w.delta = std::move(ups[0]);
  auto take = [&](const char* k, double& v) {
    auto& m = w.delta.metrics;
    for (auto it = m.begin(); it != m.end(); ++it)
      if (it->first == k) {
        v = it->second;
        m.erase(it);
        return true;
      }
    return false;
  };
  double round = 0, staleness = 0, has_base = 1;
  if (!take("wal_round", round) || !take("wal_staleness", staleness)
      || !take("wal_has_base", has_base))
    return bad("missing wal_round, wal_staleness or wal_has_base");
  w.round = static_cast<std::uint32_t>(round);
  w.staleness = static_cast<std::uint64_t>(staleness);
  w.has_base = has_base != 0;
  if (ups.size() == 2)
    w.kept = std::move(ups[1].prompts);
  return w;
}

aggregator_actor::behavior_type
aggregator(aggregator_actor::stateful_pointer<aggregator_state> self, context_ptr ctx,
           prompt_set layout, aggregator_options opts) {
  auto& st0 = self->state;
  st0.staleness = opts.staleness;
  st0.zero_base = std::make_shared<const prompt_set>(zeros_like(layout));
  // Updates accepted by an earlier process: held again, in their order.
  for (auto& rec : opts.replay) {
    auto w = parse_wal_record(rec);
    if (!w) {
      ctx->log->error("aggregator: skipping a log record: {}", w.err().message());
      continue;
    }
    auto& up = w.value().delta;
    aggregator_state::held_update h;
    h.task_id = up.task_id;
    h.client_id = up.client_id;
    h.round = w.value().round;
    h.staleness = w.value().staleness;
    h.num_samples = static_cast<double>(up.num_samples);
    h.metrics = up.metrics;
    if (w.value().kept)
      h.prompts = std::move(w.value().kept);
    if (w.value().has_base) {
      h.base = st0.zero_base;
      if (auto err = st0.sum.add(h.task_id, h.num_samples, h.staleness, st0.zero_base,
                                 std::move(up.prompts), st0.staleness)) {
        ctx->log->error("aggregator: skipping logged update of task {}: {}", h.task_id,
                        err->message());
        continue;
      }
    } else {
      h.prompts = std::move(up.prompts);
    }
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
    return ctx->seal(envelope{self_name, reject_msg{err.code, err.text, task}});
  };
  // Everything held is folded or discarded: the segment is consumed.
  auto rotate_log = [=](aggregator_state& st) {
    if (!st.wal)
      return;
    auto closed = st.wal->rotate();
    if (closed)
      st.wal_consumed = closed.value();
    else
      ctx->log->error("aggregator: {}", closed.err().message());
  };
  return {
    [=](open_atom, const task_expectation& ex) {
      self->state.open[ex.task_id] = aggregator_state::open_task{ex, false};
    },
    [=](version_atom, std::uint64_t version, std::uint32_t bound, const staleness_fn& s) {
      self->state.version = version;
      self->state.max_staleness = bound;
      self->state.staleness = s;
    },
    [=](const wire_buffer& buf) -> wire_buffer {
      auto env = decode(buf);
      if (!env)
        return reject(env.err(), 0, "?");
      auto* up = std::get_if<update_msg>(&env.value().body);
      if (up == nullptr)
        return reject(error{errc::unsupported,
                            std::string("aggregator takes update, got ")
                              + kind_name(env.value().body)},
                      0, env.value().sender);
      if (auto err = validate(self->state, env.value(), *up, layout)) {
        // A rejection for a task that is not this sender's must not disturb
        // the real owner's task.
        bool own = self->state.open.count(up->task_id)
                   && self->state.open[up->task_id].expect.client_id == up->client_id
                   && env.value().sender == client_name(up->client_id)
                   && err->code != errc::duplicate;
        return reject(*err, own ? up->task_id : 0, env.value().sender, up->task_id);
      }
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
      if (expect.keep_prompts || !expect.base)
        h.prompts = up->prompts;
      if (st.wal) { // logged before it counts and before the Ack
        update_msg d{task_id, client, up->base_version,
                     expect.base ? delta_of(up->prompts, *expect.base) : up->prompts,
                     up->num_samples, h.metrics};
        std::optional<error> err = check_values(d.prompts);
        if (!err)
          err = st.wal->append(wal_record(d, round, h.staleness, expect.base != nullptr,
                                          expect.keep_prompts && expect.base ? &*h.prompts
                                                                             : nullptr));
        if (err) {
          task.answered = false;
          return reject(*err, task_id, env.value().sender, task_id);
        }
      }
      // (after the log: an `update` event means it is durable)
      ctx->event("update",
                 json::object{{"task", task_id},
                              {"client", client},
                              {"round", round},
                              {"base_version", expect.base_version},
                              {"staleness", h.staleness},
                              {"num_samples", h.num_samples},
                              {"loss_before", metric_or(h.metrics, "loss_before", NAN)},
                              {"loss_after", metric_or(h.metrics, "loss_after", NAN)}});
      if (expect.base) {
        if (auto err = st.sum.add(task_id, h.num_samples, h.staleness, expect.base,
                                  std::move(up->prompts), st.staleness)) {
          task.answered = false;
          return reject(*err, task_id, env.value().sender, task_id);
        }
      }
      st.held.push_back(std::move(h));
      auto ack = ctx->seal(envelope{self_name, ack_msg{task_id}});
      if (ctx->traffic != nullptr) {
        ctx->traffic->from_client(client, buf.size_bytes());
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
      } else if (req.strategy == "fedasync") {
        folded = req.current;
        for (auto& h : st.held) {
          if (!h.prompts) {
            folded = error{errc::unsupported, "fedasync needs the updates' prompts kept"};
            break;
          }
          stale_update in{h.task_id, h.num_samples, h.staleness,
                          h.base ? h.base.get() : &req.current, &*h.prompts};
          folded = mix_async(folded.value(), in, req.staleness, req.alpha);
          if (!folded)
            break;
        }
      } else if (st.sum.count() == n_held) {
        folded = st.sum.apply(req.current, req.eta);
      } else { // updates without a base: fold them as a batch against `current`
        std::vector<stale_update> inputs;
        for (auto& h : st.held)
          inputs.push_back({h.task_id, h.num_samples, h.staleness,
                            h.base ? h.base.get() : &req.current, &*h.prompts});
        folded = fold_buffered(req.current, inputs, req.staleness, req.eta);
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
        json ids = json::array{}, taus = json::array{};
        for (std::size_t i = 0; i < out.updates.size(); ++i) {
          ids.as_array().push_back(out.updates[i]);
          taus.as_array().push_back(out.staleness[i]);
        }
        ctx->event("aggregate", json::object{{"round", req.round},
                                             {"strategy", req.strategy},
                                             {"updates", ids},
                                             {"staleness", taus},
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
