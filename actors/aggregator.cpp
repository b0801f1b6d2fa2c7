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
  if (auto err = check_layout(layout, up.prompts))
    return err;
  if (auto err = check_values(up.prompts))
    return err;
  if (up.num_samples == 0)
    return error{errc::malformed, "update reports zero samples"};
  return std::nullopt;
}

} // namespace

aggregator_actor::behavior_type
aggregator(aggregator_actor::stateful_pointer<aggregator_state> self,
           context_ptr ctx, caf::actor server, prompt_set layout) {
  auto reject = [=](const error& err, std::uint64_t task, const std::string& from) {
    ctx->event("reject", json::object{{"by", self_name},
                                      {"from", from},
                                      {"task", task},
                                      {"reason", to_string(err.code)},
                                      {"text", err.text}});
    ctx->log->warn("aggregator rejected an update from '{}': {}", from,
                   err.message());
    if (task != 0 && self->state.open.count(task))
      caf::anon_send(server, rejected_atom::value, task);
    return ctx->seal(envelope{self_name, reject_msg{err.code, err.text, task}});
  };
  return {
    [=](open_atom, const task_expectation& ex) {
      self->state.open[ex.task_id] = aggregator_state::open_task{ex, false};
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
        return reject(*err, own ? up->task_id : 0, env.value().sender);
      }
      auto& task = self->state.open[up->task_id];
      task.answered = true;
      auto round = task.expect.round;
      ctx->event("update",
                 json::object{{"task", up->task_id},
                              {"client", up->client_id},
                              {"round", round},
                              {"base_version", up->base_version},
                              {"num_samples", up->num_samples},
                              {"loss_before", metric_or(up->metrics, "loss_before", NAN)},
                              {"loss_after", metric_or(up->metrics, "loss_after", NAN)}});
      auto task_id = up->task_id;
      auto client = up->client_id;
      self->state.accepted.push_back({task_id, round, std::move(*up)});
      caf::anon_send(server, accepted_atom::value, task_id);
      auto ack = ctx->seal(envelope{self_name, ack_msg{task_id}});
      if (ctx->traffic != nullptr) {
        ctx->traffic->from_client(client, buf.size_bytes());
        ctx->traffic->to_client(client, ack.size_bytes());
      }
      return ack;
    },
    [=](close_atom, std::uint32_t round, std::uint32_t min_updates) {
      auto& st = self->state;
      aggregate_outcome out;
      // Close the round's tasks: later updates for them are task_closed.
      for (auto it = st.open.begin(); it != st.open.end();) {
        if (it->second.expect.round == round) {
          st.closed.insert(it->first);
          it = st.open.erase(it);
        } else {
          ++it;
        }
      }
      std::vector<weighted_prompts> inputs;
      double before = 0, after = 0, seconds = 0, flops = 0;
      for (auto& a : st.accepted)
        if (a.round == round) {
          inputs.push_back({a.task_id, static_cast<double>(a.update.num_samples),
                            &a.update.prompts});
          out.updates.push_back(a.task_id);
          out.per_client.emplace_back(a.update.client_id, a.update.prompts);
          before += metric_or(a.update.metrics, "loss_before", 0);
          after += metric_or(a.update.metrics, "loss_after", 0);
          seconds += metric_or(a.update.metrics, "train_seconds", 0);
          flops += metric_or(a.update.metrics, "flops", 0);
        }
      if (inputs.size() < std::max<std::uint32_t>(min_updates, 1)) {
        out.note = "round " + std::to_string(round) + ": "
                   + std::to_string(inputs.size()) + " update(s), "
                   + std::to_string(std::max<std::uint32_t>(min_updates, 1))
                   + " needed";
        out.updates.clear();
        out.per_client.clear();
      } else if (auto avg = fedavg(inputs); avg) {
        out.has_result = true;
        out.prompts = std::move(avg).value();
        auto n = static_cast<double>(inputs.size());
        out.mean_loss_before = before / n;
        out.mean_loss_after = after / n;
        out.mean_train_seconds = seconds / n;
        out.mean_flops = flops / n;
        json ids = json::array{};
        for (auto id : out.updates)
          ids.as_array().push_back(id);
        ctx->event("aggregate", json::object{{"round", round},
                                             {"strategy", "fedavg"},
                                             {"updates", ids},
                                             {"mean_loss_before", out.mean_loss_before},
                                             {"mean_loss_after", out.mean_loss_after}});
      } else {
        out.note = avg.err().message();
        out.updates.clear();
        out.per_client.clear();
      }
      // Drop the round's updates: aggregated or not, they are done with.
      st.accepted.erase(std::remove_if(st.accepted.begin(), st.accepted.end(),
                                       [&](auto& a) { return a.round == round; }),
                        st.accepted.end());
      return out;
    },
  };
}

} // namespace fedsp
