// Devices and mixed precision below the actors (models/precision.hpp,
// client_session::place). Each test runs on the first CUDA device when
// libtorch sees one and on the CPU otherwise, so scripts/device-check.sh
// runs the same assertions on a GPU (the suite is `devices`).
#include <cmath>
#include <optional>
#include <sstream>

#include <gtest/gtest.h>

#include "tests/models/trainer_fixtures.hpp"

#include "models/checkpoint.hpp"
#include "models/device.hpp"
#include "models/federated.hpp"
#include "models/precision.hpp"
#include "models/safetensors.hpp"
#include "models/scoring.hpp"
#include "models/tokenizer.hpp"
#include "models/trainer.hpp"

namespace fedsp::models {
namespace {

std::string here() { return torch::cuda::is_available() ? "cuda:0" : "cpu"; }

using fixtures::prompt_cfg;
using fixtures::small;
using fixtures::task;

// Three rounds of a client trainer on `device` with `dtype` (autocast for
// bf16/f16, loss scaling for f16, as client_session runs it).
std::vector<client_report> train(const std::string& device, const std::string& dtype,
                                 const std::string& scaling_dtype) {
  gpt body(small(), 1);
  soft_prompt prompt(prompt_cfg(), 2);
  body->to(torch::Device(device));
  prompt->to(torch::Device(device));
  client_params p;
  p.model_steps = 6;
  p.prompt_steps = 6;
  p.model_lr = 1e-3;
  p.prompt_lr = 0.1;
  p.rounds = 3;
  p.dtype = scaling_dtype;
  client_trainer trainer(body, prompt, p);
  auto data = task(48, 4);
  auto ps = prompt->to_prompts(0);
  std::vector<client_report> out;
  for (int r = 0; r < 3; ++r) {
    autocast_scope precision(torch::Device(device), dtype);
    auto rep = trainer.round(ps, data, 10 + static_cast<std::uint64_t>(r));
    EXPECT_TRUE(rep.ok()) << rep.err().text;
    if (!rep.ok())
      return out;
    ps = rep.value().prompts;
    out.push_back(rep.value());
  }
  for (auto& t : trainer.state_tensors()) { // float32 masters, on the device
    EXPECT_EQ(t.scalar_type(), torch::kFloat);
    EXPECT_EQ(t.device(), torch::Device(device));
  }
  return out;
}

TEST(devices, device_names_travel_as_numbers_and_back) {
  for (auto name : {"cpu", "cuda:0", "cuda:7"})
    EXPECT_EQ(device_name(device_index(name)), name);
  EXPECT_EQ(device_name(NAN), "unknown");
  EXPECT_EQ(device_name(0.5), "unknown");
  EXPECT_EQ(device_name(-2), "unknown");
}

// Scaling the loss by 2^16 and the gradients back is exact in float32, so
// the f16 recipe's loss scaling, without autocast, trains bit for bit as
// plain f32: the scaler adds no error of its own.
TEST(devices, loss_scaling_by_a_power_of_two_changes_no_step) {
  auto plain = train(here(), "f32", "f32");
  auto scaled = train(here(), "f32", "f16");
  ASSERT_EQ(plain.size(), 3u);
  ASSERT_EQ(scaled.size(), 3u);
  for (std::size_t r = 0; r < 3; ++r) {
    EXPECT_EQ(plain[r].prompts.tensors[0].data, scaled[r].prompts.tensors[0].data) << "round " << r;
    EXPECT_EQ(plain[r].loss_after, scaled[r].loss_after) << "round " << r;
  }
}

TEST(devices, a_step_with_non_finite_gradients_is_skipped_and_the_scale_halves) {
  auto w = torch::ones({3}, torch::requires_grad()).to(torch::Device(here())).detach();
  w.set_requires_grad(true);
  optimizer_stage stage({w}, lr_schedule{0.1, 0, 10}, 0.0);
  stage.enable_loss_scaling(1024);
  auto before = w.detach().clone();
  stage.scaled(w.sum() * INFINITY).backward();
  EXPECT_FALSE(stage.step());
  EXPECT_TRUE(torch::equal(w.detach(), before)) << "a skipped step changed the weights";
  EXPECT_EQ(stage.loss_scale(), 512);
  EXPECT_EQ(stage.steps_skipped(), 1);
  EXPECT_EQ(stage.steps_done(), 0);
  stage.scaled(w.sum()).backward();
  EXPECT_TRUE(w.grad().defined());
  EXPECT_TRUE(stage.step());
  EXPECT_FALSE(torch::equal(w.detach(), before));
  EXPECT_EQ(stage.steps_done(), 1);
}

TEST(devices, the_loss_scale_survives_a_checkpoint_of_the_optimizer) {
  auto w = torch::ones({3}).to(torch::Device(here()));
  w.set_requires_grad(true);
  optimizer_stage stage({w}, lr_schedule{0.1, 0, 10}, 0.0);
  stage.enable_loss_scaling(1024);
  stage.scaled(w.sum() * INFINITY).backward();
  ASSERT_FALSE(stage.step()); // the scale halves to 512
  stage.scaled(w.sum()).backward();
  ASSERT_TRUE(stage.step());
  auto bytes = stage.save();

  // A resumed f16 run starts from the saved scale, not from its initial one.
  optimizer_stage resumed({w}, lr_schedule{0.1, 0, 10}, 0.0);
  resumed.enable_loss_scaling(1024);
  ASSERT_FALSE(resumed.load(bytes).has_value());
  EXPECT_EQ(resumed.loss_scale(), 512);
  EXPECT_EQ(resumed.steps_skipped(), 1);
  EXPECT_EQ(resumed.steps_done(), 1);
  // An f32 run keeps its own choice: no scaling.
  optimizer_stage f32({w}, lr_schedule{0.1, 0, 10}, 0.0);
  ASSERT_FALSE(f32.load(bytes).has_value());
  EXPECT_EQ(f32.loss_scale(), 0);

  // A checkpoint whose scaler state is not finite is refused, saying so.
  torch::optim::AdamW adam({w}, torch::optim::AdamWOptions(0.1));
  torch::serialize::OutputArchive archive;
  adam.save(archive);
  archive.write("fedsp_steps_done", torch::tensor(static_cast<std::int64_t>(1)));
  archive.write("fedsp_loss_scaler", torch::tensor(std::vector<double>{std::nan(""), 0.0, 0.0}));
  std::ostringstream out;
  archive.save_to(out);
  auto err = resumed.load(out.str());
  ASSERT_TRUE(err.has_value());
  EXPECT_NE(err->text.find("loss scaler"), std::string::npos) << err->text;
}

TEST(devices, bf16_autocast_runs_matrix_products_in_bf16_and_keeps_float32_masters) {
  auto dev = torch::Device(here());
  gpt model(small(), 3);
  model->to(dev);
  auto idx = torch::randint(0, 256, {2, 16}, torch::kLong);
  auto f32 = model->forward(idx, torch::Tensor());
  EXPECT_EQ(f32.scalar_type(), torch::kFloat);
  torch::Tensor bf16;
  {
    autocast_scope precision(dev, "bf16");
    bf16 = model->forward(idx, torch::Tensor());
  }
  EXPECT_EQ(bf16.scalar_type(), torch::kBFloat16) << "autocast did not engage";
  EXPECT_EQ(model->forward(idx, torch::Tensor()).scalar_type(), torch::kFloat)
    << "autocast stayed on after its scope";
  for (auto& p : model->parameters())
    EXPECT_EQ(p.scalar_type(), torch::kFloat);
  // bfloat16 keeps 8 bits of mantissa: logits agree to about 1e-2 relative
  auto err = (bf16.to(torch::kFloat) - f32).abs().max().item<double>();
  auto scale = f32.abs().max().item<double>();
  EXPECT_LT(err, 0.05 * scale) << err << " against logits up to " << scale;
  EXPECT_GT(err, 0.0) << "bf16 gave exactly the f32 logits: nothing was cast";
}

// Within 10% of f32's final probe loss (3.72 against 3.60 here). Autocast's
// weight casts going stale after an optimizer step (fixed in
// optimizer_stage::step) left the body untrained: 4.43.
TEST(devices, training_under_bf16_lowers_the_loss_as_f32_does) {
  auto f32 = train(here(), "f32", "f32");
  auto bf16 = train(here(), "bf16", "bf16");
  ASSERT_EQ(bf16.size(), 3u);
  auto first = bf16.front().loss_before, last = bf16.back().loss_after;
  std::printf("probe loss: f32 %.4f -> %.4f, bf16 %.4f -> %.4f\n", f32.front().loss_before,
              f32.back().loss_after, first, last);
  EXPECT_LT(last, first);
  EXPECT_NEAR(last, f32.back().loss_after, 0.1 * f32.back().loss_after);
}

TEST(devices, f16_autocast_with_loss_scaling_trains_on_a_gpu) {
  if (!torch::cuda::is_available())
    GTEST_SKIP() << "f16 autocast needs a CUDA device (compute.dtype f16 exits 2 on the CPU)";
  auto f32 = train(here(), "f32", "f32");
  auto f16 = train(here(), "f16", "f16");
  ASSERT_EQ(f16.size(), 3u);
  EXPECT_LT(f16.back().loss_after, f16.front().loss_before);
  EXPECT_NEAR(f16.back().loss_after, f32.back().loss_after, 0.1 * f32.back().loss_after);
}

// A scenario's server, prepared on the CPU: the model file its clients get.
struct prepared_server {
  scenario sc;
  task_split data;
  std::shared_ptr<server_session> server;
};
std::optional<prepared_server> prepare_server(const char* yaml, const char* name) {
  auto sc = parse_scenario(yaml, name);
  if (!sc.ok()) {
    ADD_FAILURE() << sc.err().text;
    return std::nullopt;
  }
  auto data = load_task_split(sc.value());
  if (!data.ok()) {
    ADD_FAILURE() << data.err().text;
    return std::nullopt;
  }
  auto server = server_session::create(sc.value(), data.value(), "cpu");
  if (!server.ok() || !server.value()->prepare().ok()) {
    ADD_FAILURE() << (server.ok() ? "prepare failed" : server.err().text);
    return std::nullopt;
  }
  return prepared_server{sc.value(), data.value(), server.value()};
}

// A client session built on the device trains there; after place() moves
// it (a failover to a worker on another device) it trains on. On the CPU
// both runs are the CPU's and agree bit for bit; on a GPU the device run
// agrees with the CPU run to float32 rounding.
TEST(devices, a_client_session_trains_on_its_device_and_moves_with_place) {
  auto p = prepare_server(R"(name: place
seed: 5
model: {layers: 1, width: 16, heads: 2, context: 48, prompt_length: 2, init_std: 0.2}
data: {train: 16, test: 8, public: 8}
clients: {count: 1}
method: {name: fedsp, distill_steps: 2, distill_batch: 2, distill_seq_len: 16, server_steps: 2}
training: {prompt_steps: 2, model_steps: 2, batch_size: 4}
)",
                           "place.yaml");
  ASSERT_TRUE(p.has_value());
  auto bytes = p->server->client_model();
  auto cpu = client_session::create(bytes, p->sc, p->data.train, "cpu");
  auto dev = client_session::create(bytes, p->sc, p->data.train, here());
  ASSERT_TRUE(cpu.ok() && dev.ok());
  EXPECT_EQ(dev.value()->device(), here());
  auto prompts = p->server->initial_prompts();
  auto a = cpu.value()->round(prompts, 1);
  auto b = dev.value()->round(prompts, 1);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(cpu.value()->place("cpu"), 0.0) << "placing where it is must cost nothing";
  dev.value()->place("cpu");
  EXPECT_EQ(dev.value()->device(), "cpu");
  auto a2 = cpu.value()->round(a.value().prompts, 2);
  auto b2 = dev.value()->round(b.value().prompts, 2);
  ASSERT_TRUE(a2.ok() && b2.ok()) << (a2.ok() ? b2.err().text : a2.err().text);
  auto& x = a2.value().prompts.tensors[0].data;
  auto& y = b2.value().prompts.tensors[0].data;
  ASSERT_EQ(x.size(), y.size());
  double worst = 0;
  for (std::size_t i = 0; i < x.size(); ++i)
    worst = std::max(worst, static_cast<double>(std::abs(x[i] - y[i])));
  if (here() == "cpu")
    EXPECT_EQ(worst, 0.0);
  else
    EXPECT_LT(worst, 1e-3);
}

// The prompts of a round, as floats, for comparing two sessions.
std::vector<float> flat(const client_round_report& r) {
  std::vector<float> out;
  for (auto& t : r.prompts.tensors)
    out.insert(out.end(), t.data.begin(), t.data.end());
  return out;
}

TEST(devices, sessions_whose_body_never_trains_share_one_copy_and_train_as_with_their_own) {
  const char* yaml = R"(name: shared
seed: 5
model: {layers: 2, width: 32, heads: 2, context: 48, prompt_length: 2, init_std: 0.2}
data: {train: 16, test: 8, public: 8}
clients: {count: 2}
method: {name: fedsp, distill_steps: 2, distill_batch: 2, distill_seq_len: 16, server_steps: 2}
training: {prompt_steps: 3, model_steps: 0, batch_size: 4}
)";
  auto p = prepare_server(yaml, "shared.yaml");
  ASSERT_TRUE(p.has_value());
  auto own = p->sc;
  own.compute.share_frozen_body = false;
  auto bytes = p->server->client_model();
  auto a = client_session::create(bytes, p->sc, p->data.train, here());
  auto b = client_session::create(bytes, p->sc, p->data.train, here());
  auto c = client_session::create(bytes, own, p->data.train, here());
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  auto prompts = p->server->initial_prompts();
  auto ra = a.value()->round(prompts, 1);
  ASSERT_TRUE(ra.ok()) << ra.err().text;
  // The shared body is no session's state: a session keeps its prompts'
  // tensors only, far below the body's float32 bytes; one with its own
  // copy keeps the body too.
  auto body_bytes = static_cast<std::uint64_t>(a.value()->parameters()) * 4;
  EXPECT_LT(a.value()->resident_bytes(), body_bytes / 10);
  EXPECT_GE(c.value()->resident_bytes(), body_bytes);
  // Paging a sharing session out leaves the body where it is for the others.
  a.value()->offload();
  auto rb = b.value()->round(prompts, 1);
  auto rc = c.value()->round(prompts, 1);
  ASSERT_TRUE(rb.ok() && rc.ok());
  a.value()->restore();
  // The same inputs give the same prompts: after another session trained on
  // the shared body, and as with a body of one's own.
  EXPECT_EQ(flat(ra.value()), flat(rb.value()));
  EXPECT_EQ(flat(ra.value()), flat(rc.value()));
  auto ra2 = a.value()->round(ra.value().prompts, 2);
  auto rc2 = c.value()->round(rc.value().prompts, 2);
  ASSERT_TRUE(ra2.ok() && rc2.ok());
  EXPECT_EQ(flat(ra2.value()), flat(rc2.value()));

  // A body that trains is never shared: each session has its own.
  auto trains = p->sc;
  trains.training.model_steps = 2;
  auto d = client_session::create(bytes, trains, p->data.train, here());
  ASSERT_TRUE(d.ok());
  ASSERT_TRUE(d.value()->round(prompts, 1).ok());
  EXPECT_GE(d.value()->resident_bytes(), body_bytes);
}


// The model file a client receives names the global depth its prompts have
// (layer dropping may leave the last layers out of the map). A value that
// is not a number, falls short of the map or is absurd is refused by name,
// as malformed; one that fits is taken.
TEST(devices, a_model_file_whose_global_depth_does_not_fit_is_refused) {
  auto p = prepare_server(R"(name: depth
seed: 5
model: {layers: 2, width: 16, heads: 2, context: 48, prompt_length: 2, init_std: 0.2}
data: {train: 16, test: 8, public: 8}
clients: {count: 1}
method: {name: fedsp, aux_method: drop, distill_steps: 2, distill_batch: 2, distill_seq_len: 16, server_steps: 2}
training: {prompt_steps: 2, model_steps: 0, batch_size: 4}
)",
                          "depth.yaml");
  ASSERT_TRUE(p.has_value());
  auto file = parse_safetensors(p->server->client_model(), "client model");
  ASSERT_TRUE(file.ok()) << file.err().text;
  auto aux = load_gpt(file.value(), "client model");
  ASSERT_TRUE(aux.ok()) << aux.err().text;
  auto with_depth = [&](const std::string& depth) {
    auto bytes = gpt_bytes(aux.value(), "auxiliary", {{"to_global", "0"}, {"global_depth", depth}});
    EXPECT_TRUE(bytes.ok());
    return client_session::create(bytes.value(), p->sc, p->data.train, "cpu");
  };
  for (const char* bad : {"banana", "", "2x", "0", "99999999"}) {
    auto s = with_depth(bad);
    ASSERT_FALSE(s.ok()) << "'" << bad << "'";
    EXPECT_EQ(s.err().code, errc::malformed) << "'" << bad << "'";
    EXPECT_NE(s.err().text.find("global_depth"), std::string::npos) << s.err().text;
  }
  auto good = with_depth("2");
  ASSERT_TRUE(good.ok()) << good.err().text;
  auto r = good.value()->round(p->server->initial_prompts(), 1);
  EXPECT_TRUE(r.ok()) << r.err().text; // prompts of the global depth, 2
}

} // namespace
} // namespace fedsp::models
