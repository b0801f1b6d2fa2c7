// The server's intake and its client registry, message by message under the
// test coordinator, with the test's scoped actor playing every client: joins
// wait while the model is prepared, a join under another name is refused,
// join nodes are refused when the run takes none, and (run) sends round 1's
// tasks to exactly the joined clients.
#define CAF_SUITE server_dsl
#include "actors/server_state.hpp"
#include "actors/worker.hpp"
#include "tests/actors/dsl/dsl_fixture.hpp"

using namespace fedsp;

namespace {

struct fixture : test::dsl_fixture {
  timeline tl;
  server_actor srv;

  fixture() {
    auto sc = parse_scenario(R"(
seed: 4
model:
  kind: mlp
data:
  train: 40
  test: 10
  public: 10
method:
  name: fedprompt
clients:
  count: 2
federation:
  rounds: 1
)",
                             "server_dsl.yaml");
    CAF_REQUIRE(sc.ok());
    auto data = load_task_split(sc.value());
    CAF_REQUIRE(data.ok());
    auto session = server_session::create(sc.value(), data.value());
    CAF_REQUIRE(session.ok());
    server_config cfg;
    cfg.sc = std::make_shared<const scenario>(sc.value());
    cfg.plan = plan_of("fedprompt").value();
    cfg.session = session.value();
    cfg.worker = sys.spawn(worker, std::string("cpu"));
    cfg.expected_clients = 2;
    cfg.clock = &tl;
    srv = spawn_server(sys, tc.ctx, std::move(cfg));
  }

  ~fixture() override {
    self->send_exit(srv, caf::exit_reason::kill); // its liveness timer then finds no one
    sched.run();
  }

  server_state& state() {
    return deref<server_actor::stateful_base<server_state>>(srv).state;
  }

  void join(std::uint32_t id, const std::string& as) {
    self->send(srv, encode(envelope{as, join_msg{id, 5}}));
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(server_dsl, fixture)

CAF_TEST(a join waits for the model and then is welcomed and registered) {
  join(0, "client-0"); // while the server prepares: left in its mailbox
  sched.run();         // preparing (on the worker), then the join
  auto w = next();
  auto* welcome = std::get_if<welcome_msg>(&w.body);
  CAF_REQUIRE(welcome != nullptr);
  CAF_CHECK_EQUAL(welcome->client_id, 0u);
  CAF_CHECK(!welcome->prompt_shapes.tensors.empty());
  CAF_CHECK(state().clients.joined(0));
  CAF_CHECK_EQUAL(state().clients.find(0)->num_samples, 5u);
  CAF_CHECK(quiet());
}

CAF_TEST(a join under the name of another client is refused and registers nobody) {
  sched.run();
  join(1, "client-0");
  expect((wire_buffer), from(self).to(srv));
  auto r = next();
  CAF_CHECK_EQUAL(reason_of(r), errc::wrong_client);
  CAF_CHECK(!state().clients.joined(1));
  CAF_CHECK_EQUAL(state().clients.size(), 0u);
  CAF_CHECK_EQUAL(events_of("reject").size(), 1u);
}

CAF_TEST(a run without join nodes refuses a hello and names why) {
  sched.run();
  self->send(srv, hello_atom::value, std::string("token"), std::uint32_t{0}, std::uint32_t{1});
  expect((hello_atom, std::string, std::uint32_t, std::uint32_t), from(self).to(srv));
  std::string why;
  self->receive([&](caf::error& err) { why = sys.render(err); },
                caf::after(std::chrono::seconds(0)) >> [] { CAF_FAIL("no answer"); });
  CAF_CHECK(why.find("this server takes no join nodes") != std::string::npos);
  CAF_CHECK_EQUAL(events_of("node_refused").size(), 1u);
}

CAF_TEST(the run starts once every client joined and sends round 1 to exactly them) {
  sched.run();
  join(0, "client-0");
  join(1, "client-1");
  self->send(srv, run_atom::value);
  sched.run(); // both welcomed, version 0 scored on the worker, round 1 opened
  std::vector<std::uint32_t> welcomed, tasked;
  while (!quiet()) {
    auto e = next();
    if (auto* w = std::get_if<welcome_msg>(&e.body))
      welcomed.push_back(w->client_id);
    else if (auto* t = std::get_if<task_msg>(&e.body))
      tasked.push_back(t->client_id);
    else
      CAF_FAIL("unexpected " << kind_name(e.body));
  }
  CAF_CHECK_EQUAL(welcomed, (std::vector<std::uint32_t>{0, 1}));
  CAF_CHECK_EQUAL(tasked, (std::vector<std::uint32_t>{0, 1}));
  CAF_CHECK_EQUAL(events_of("round").size(), 1u);
  CAF_CHECK(state().clients.find(0)->busy);
  CAF_CHECK(state().clients.find(1)->busy);
}

CAF_TEST_FIXTURE_SCOPE_END()
