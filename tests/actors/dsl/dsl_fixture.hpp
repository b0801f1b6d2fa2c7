// A test-coordinator fixture for fedsp's actors: the deterministic
// scheduler of caf/test/dsl.hpp, a run context writing events to a
// temporary folder, and helpers to seal and open envelopes. The scoped
// actor `self` plays the peer (the server, a client): what an actor sends
// it waits in its mailbox, and `next()` takes the next one, failing the
// test if there is none.
#pragma once

#include <unistd.h>

#include <caf/test/dsl.hpp>

#include "actors/wire.hpp"
#include "tests/actors/actor_test_util.hpp"

namespace fedsp::test {

struct dsl_config : caf::actor_system_config {
  dsl_config() { add_message_type<wire_buffer>("fedsp::wire_buffer"); }
};

struct dsl_fixture : test_coordinator_fixture<dsl_config> {
  test_context tc{"fedsp_dsl_" + std::to_string(::getpid())};
  std::vector<caf::response_promise> unanswered; // requests next(false) left open

  /// The next message `self` holds, decoded; fails when there is none. A
  /// request is answered with an empty buffer, as the server answers a
  /// Heartbeat (the sender then has that answer in its mailbox), unless
  /// `answer` is false.
  envelope next(bool answer = true) {
    envelope out;
    bool got = false;
    self->receive(
      [&](wire_buffer& buf) {
        auto env = decode(buf);
        CAF_REQUIRE(env.ok());
        out = std::move(env).value();
        got = true;
        auto* e = self->current_mailbox_element();
        if (e == nullptr || !e->mid.is_request())
          return;
        auto rp = self->make_response_promise(); // (no automatic empty answer)
        if (answer)
          rp.deliver(wire_buffer{});
        else
          unanswered.push_back(rp);
      },
      caf::after(std::chrono::seconds(0)) >> [] {});
    CAF_REQUIRE(got);
    return out;
  }

  /// Does `self` hold no message?
  bool quiet() { return self->mailbox().empty(); }

  static errc reason_of(const envelope& e) {
    auto* r = std::get_if<reject_msg>(&e.body);
    return r != nullptr ? r->reason : errc::unknown;
  }

  static prompt_set prompts(float v, std::vector<std::uint32_t> shape = {2, 3}) {
    tensor_buffer t{"prefix", std::move(shape), {}};
    t.data.assign(t.numel(), v);
    return prompt_set{0, {t}};
  }

  /// Every event of `type` written so far.
  std::vector<json> events_of(const std::string& type) {
    tc.events->flush();
    std::vector<json> out;
    for (auto& e : read_jsonl(tc.dir / "events.jsonl"))
      if (auto* t = e.find("type"); t != nullptr && t->as_string() == type)
        out.push_back(e);
    return out;
  }
};

} // namespace fedsp::test
