// A client, message by message under the test coordinator, with the test's
// scoped actor as its server: the join handshake, a model whose checksum
// fails, tasks before the welcome or for someone else, and heartbeats fired
// by triggering its timer (no sleeps).
#define CAF_SUITE client_dsl
#include "actors/client.hpp"
#include "tests/actors/dsl/dsl_fixture.hpp"

using namespace fedsp;

namespace {

struct fixture : test::dsl_fixture {
  client_actor cl;
  std::vector<model_chunk_msg> chunks = split_model("aux-test", std::string(100, 'x'), 60);

  fixture() {
    auto sc = parse_scenario(R"(
seed: 3
model:
  kind: mlp
method:
  name: fedprompt
clients:
  count: 4
federation:
  silence_s: 600
)",
                             "client_dsl.yaml");
    CAF_REQUIRE(sc.ok());
    auto data = std::make_shared<std::vector<mc_example>>(
      3, mc_example{"a context", {"yes", "no"}, 0, ""});
    client_config cfg{2, data, std::make_shared<const scenario>(sc.value()),
                      caf::actor_cast<caf::actor>(self), worker_actor{}, {}};
    cl = sys.spawn(client, tc.ctx, std::move(cfg));
    sched.run(); // it starts: its Join waits in self's mailbox
  }

  ~fixture() override {
    send(shutdown_msg{"test over"}); // its pending tick then finds no one
  }

  void send(message_body body) {
    self->send(cl, encode(envelope{"server", std::move(body)}));
    expect((wire_buffer), from(self).to(cl));
  }

  /// Answers the client's Join with a Welcome announcing two chunks.
  void welcome() {
    bool joined = false;
    self->receive(
      [&](wire_buffer& buf) -> wire_buffer {
        auto env = decode(buf);
        CAF_REQUIRE(env.ok());
        auto* j = std::get_if<join_msg>(&env.value().body);
        CAF_REQUIRE(j != nullptr);
        CAF_CHECK_EQUAL(env.value().sender, "client-2");
        CAF_CHECK_EQUAL(j->client_id, 2u);
        CAF_CHECK_EQUAL(j->num_samples, 3u);
        joined = true;
        return encode(envelope{"server", welcome_msg{2, 0, prompts(0.f), "aux-test", 100, 2}});
      },
      caf::after(std::chrono::seconds(0)) >> [] {});
    CAF_REQUIRE(joined);
    expect((wire_buffer), from(self).to(cl));
  }

  task_msg task(std::uint64_t id, std::uint32_t client = 2) {
    return task_msg{id, client, 0, prompts(0.f), nullptr, 1, 0.1f, 1, 7, 0.0, 1};
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(client_dsl, fixture)

CAF_TEST(a model that fails its checksum makes the client refuse its tasks and names why) {
  welcome();
  CAF_REQUIRE_EQUAL(chunks.size(), 2u);
  chunks[1].data[0] ^= 1; // one bit flipped on the way
  send(chunks[0]);
  send(task(7)); // waits for the model
  CAF_CHECK(quiet());
  send(chunks[1]);
  auto r = next(); // the waiting task, refused as soon as the check fails
  CAF_CHECK_EQUAL(reason_of(r), errc::malformed);
  CAF_CHECK_EQUAL(std::get<reject_msg>(r.body).task_id, 7u);
  CAF_CHECK(std::get<reject_msg>(r.body).text.find("CRC-32") != std::string::npos);
  expect((wire_buffer), from(self).to(cl)); // the answer to its Reject
  send(task(8)); // and every later task
  auto r8 = next();
  CAF_CHECK_EQUAL(std::get<reject_msg>(r8.body).task_id, 8u);
  CAF_CHECK_EQUAL(reason_of(r8), errc::malformed);
}

CAF_TEST(a task before the welcome is refused; one for another client is not answered) {
  send(task(5));
  auto join = next(false); // (the Join came first; left unanswered here)
  CAF_CHECK(std::holds_alternative<join_msg>(join.body));
  auto r = next();
  CAF_CHECK_EQUAL(reason_of(r), errc::unknown_sender);
  CAF_CHECK_EQUAL(std::get<reject_msg>(r.body).task_id, 5u);
  sched.run();
  send(task(6, 3)); // client-3's task: refused locally, nothing to the server
  CAF_CHECK(quiet());
}

CAF_TEST(each tick heartbeats exactly the tasks the client holds) {
  welcome();
  CAF_CHECK_EQUAL(sched.trigger_timeout(), true); // a tick with nothing held
  expect((tick_atom), from(cl).to(cl));
  CAF_CHECK(quiet());
  send(chunks[0]); // the model is still arriving: tasks wait
  send(task(7));
  send(task(9));
  CAF_CHECK(quiet());
  CAF_CHECK_EQUAL(sched.trigger_timeout(), true);
  expect((tick_atom), from(cl).to(cl));
  auto hb = next();
  auto* h = std::get_if<heartbeat_msg>(&hb.body);
  CAF_REQUIRE(h != nullptr);
  CAF_CHECK_EQUAL(hb.sender, "client-2");
  CAF_CHECK_EQUAL(h->tasks, (std::vector<std::uint64_t>{7, 9}));
}

CAF_TEST_FIXTURE_SCOPE_END()
