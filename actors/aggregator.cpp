#include "actors/aggregator.hpp"

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

} // namespace

aggregator_actor::behavior_type
aggregator(aggregator_actor::stateful_pointer<aggregator_state> self, context_ptr ctx,
           prompt_set layout) {
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
      ctx->event("update",
                 json::object{{"task", up->task_id},
                              {"client", up->client_id},
                              {"round", round},
                              {"base_version", up->base_version},
                              {"staleness", self->state.version - up->base_version},
                              {"num_samples", up->num_samples},
                              {"loss_before", metric_or(up->metrics, "loss_before", NAN)},
                              {"loss_after", metric_or(up->metrics, "loss_after", NAN)}});
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
      } else if (req.round != 0 && req.close_round) {
        // A failed sync round: what it accepted is dropped with it (late
        // updates are refused in this mode, so that is everything held).
        out.discarded = n_held;
        if (n_held > 0)
          ctx->event("updates_discarded", json::object{{"round", req.round}, {"count", n_held},
                                                       {"reason", out.note}});
        st.held.clear();
        st.sum.clear();
        out.updates.clear();
        out.staleness.clear();
        out.per_client.clear();
      } else {
        out.updates.clear(); // kept for the next aggregation
        out.staleness.clear();
        out.per_client.clear();
      }
      out.held = st.held.size();
      return out;
    },
  };
}

} // namespace fedsp
