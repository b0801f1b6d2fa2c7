#include "models/federated.hpp"
#include "runtime/strategy.hpp"
#include "models/simple_model.hpp"

#include <cstdlib>
#include <algorithm>

#include <dlfcn.h>
#include <map>
#include <mutex>
#include <tuple>
#include <chrono>
#include <fstream>
#include <cmath>
#include <sstream>

#include "models/auxiliary.hpp"
#include "models/checkpoint.hpp"
#include "models/safetensors.hpp"
#include "models/precision.hpp"
#include "models/scoring.hpp"
#include "models/soft_prompt.hpp"
#include "models/tokenizer.hpp"
#include "models/trainer.hpp"
#include "runtime/messages.hpp"
#include "runtime/rng.hpp"

namespace fedsp {

using namespace fedsp::models;

result<method_plan> plan_of(const std::string& m) {
  if (m == "fedsp")
    return method_plan{true, true, true, true, true};
  if (m == "fedprompt_single")
    return method_plan{true, true, false, true, true};
  if (m == "fedprompt" || m == "centralized")
    return method_plan{false, false, false, true, true};
  if (m == "local")
    return method_plan{false, false, false, false, true};
  if (m == "zeroshot")
    return method_plan{false, false, false, true, false};
  return error{errc::bad_argument, "unknown method '" + m + "'"};
}

result<task_split> load_task_split(const scenario& sc) {
  task_split out;
  if (sc.data.kind == "synthetic") {
    auto all = make_synthetic_task(sc.data.train + sc.data.test + sc.data.public_examples, sc.seed);
    auto a = all.begin();
    out.train.assign(a, a + sc.data.train);
    out.test.assign(a + sc.data.train, a + sc.data.train + sc.data.test);
    out.public_examples.assign(a + sc.data.train + sc.data.test, all.end());
  } else {
    auto train = load_task_jsonl(sc.data.dir + "/train.jsonl");
    if (!train)
      return train.err();
    auto test = load_task_jsonl(sc.data.dir + "/test.jsonl");
    if (!test)
      return test.err();
    out.train = std::move(train).value();
    out.test = std::move(test).value();
    std::ifstream probe(sc.data.dir + "/public.jsonl");
    if (probe) {
      auto pub = load_task_jsonl(sc.data.dir + "/public.jsonl");
      if (!pub)
        return pub.err();
      out.public_examples = std::move(pub).value();
    }
    std::ifstream corpus_probe(sc.data.dir + "/corpus.jsonl");
    if (corpus_probe) {
      auto corpus = load_corpus_jsonl(sc.data.dir + "/corpus.jsonl");
      if (!corpus)
        return corpus.err();
      out.corpus = std::move(corpus).value();
    }
  }
  if (out.corpus.empty()) // the server's own contexts stand in for a corpus
    for (auto& ex : out.public_examples)
      out.corpus.push_back(ex.context);
  if (sc.eval.max_examples != 0 && out.test.size() > sc.eval.max_examples)
    out.test.resize(sc.eval.max_examples);
  return out;
}

namespace {

soft_prompt_config prompt_config(const scenario& sc, const decoder_config& c, std::int64_t depth) {
  soft_prompt_config p;
  p.depth = depth;
  p.n_head = c.kv_heads();
  p.head_dim = c.head_dim();
  p.length = sc.model.prompt_length;
  p.init_std = sc.model.prompt_init_std;
  p.reparameterize = sc.model.reparameterize;
  p.dropout = sc.model.prompt_dropout;
  return p;
}

std::vector<std::int64_t> parse_map(const std::string& s) {
  std::vector<std::int64_t> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    out.push_back(std::stoll(item));
  return out;
}

std::string join_map(const std::vector<std::int64_t>& v) {
  std::string out;
  for (auto x : v)
    out += (out.empty() ? "" : ",") + std::to_string(x);
  return out;
}

template <class F>
auto guarded(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const c10::Error& e) {
    return error{errc::unknown, std::string("torch: ") + e.what_without_backtrace()};
  } catch (const std::exception& e) {
    return error{errc::unknown, e.what()};
  }
}

} // namespace

// -- server ------------------------------------------------------------------------------

struct server_session::impl {
  scenario sc;
  method_plan plan;
  std::shared_ptr<const simple_model> simple; // model.kind null / mlp
  std::unique_ptr<tokenizer> tok;
  gpt global{nullptr};
  auxiliary_model aux;
  bool has_aux = false;
  soft_prompt prompt{nullptr};      // global-layout prompts, for evaluation
  std::unique_ptr<server_trainer> trainer;
  std::vector<encoded_example> public_examples, test;
  std::vector<std::int64_t> corpus;
  std::string client_bytes;
  std::string client_id;
  prompt_set initial;
  torch::Device device{torch::kCPU}; // every model and prompt of the session
};

server_session::server_session() : impl_(std::make_unique<impl>()) {}
server_session::~server_session() = default;

result<std::shared_ptr<server_session>> server_session::create(const scenario& sc,
                                                               const task_split& data,
                                                               const std::string& device) {
  auto plan = plan_of(sc.method.name);
  if (!plan)
    return plan.err();
  std::shared_ptr<server_session> s(new server_session());
  auto& m = *s->impl_;
  m.sc = sc;
  m.plan = plan.value();
  if (sc.model.kind != "gpt") {
    auto sm = simple_model::create(sc);
    if (!sm)
      return sm.err();
    m.simple = sm.value();
    m.initial = m.simple->initial();
    m.client_id = "none";
    return s;
  }
  return guarded([&]() -> result<std::shared_ptr<server_session>> {
    m.device = torch::Device(device);
    if (!sc.model.checkpoint.empty()) {
      auto g = load_gpt(sc.model.checkpoint);
      if (!g)
        return g.err();
      m.global = g.value();
      if (!sc.model.family.empty() && sc.model.family != m.global->config().family)
        return error{errc::bad_scenario, "key 'model.family' is " + sc.model.family + " but '"
                                           + sc.model.checkpoint + "' holds a "
                                           + m.global->config().model_type + " model (family "
                                           + m.global->config().family + ")"};
    } else {
      decoder_config c;
      c.family = c.model_type = sc.model.family.empty() ? "gpt2" : sc.model.family;
      c.n_kv_head = sc.model.kv_heads;
      c.n_layer = sc.model.layers;
      c.n_embd = sc.model.width;
      c.n_head = sc.model.heads;
      c.n_positions = sc.model.context;
      c.vocab_size = 256;
      c.initializer_range = sc.model.init_std;
      c.tokenizer = sc.model.tokenizer.empty() ? "byte" : sc.model.tokenizer;
      // A random model takes its tokenizer's vocabulary (gpt2: 50,257 ids),
      // so that a model of a real one's shape can run without its weights
      // (scenarios/gpu/). The byte vocabulary stays 256.
      auto tok = make_tokenizer(c.tokenizer, tokenizer_source(c.tokenizer, sc.model.vocab_dir, ""));
      if (!tok)
        return tok.err();
      c.vocab_size = std::max<std::int64_t>(256, tok.value()->vocab_size());
      m.global = gpt(c, sc.seed);
    }
    m.global->set_trainable(false);
    m.global->eval();
    m.global->to(m.device);
    auto& cfg = m.global->config();
    auto kind = sc.model.tokenizer.empty() ? cfg.tokenizer : sc.model.tokenizer;
    auto tok = make_tokenizer(kind, tokenizer_source(kind, sc.model.vocab_dir, sc.model.checkpoint));
    if (!tok)
      return tok.err();
    m.tok = std::move(tok).value();
    if (m.tok->vocab_size() > cfg.vocab_size)
      return error{errc::bad_argument, "the " + kind + " tokenizer has more ids than the model's "
                                         + std::to_string(cfg.vocab_size) + "-token vocabulary"};
    m.prompt = soft_prompt(prompt_config(sc, cfg, m.global->depth()), mix_seed(sc.seed, 7));
    m.prompt->eval();
    m.prompt->to(m.device);
    m.initial = m.prompt->to_prompts(0);
    // The server's labels: the first method.server_examples of the public
    // split (prepare shuffles it), encoded once; the distillation corpus
    // (corpus.jsonl) is not cut (docs/methods.md, "server step").
    auto& pub = data.public_examples;
    auto labelled = static_cast<std::ptrdiff_t>(
      sc.method.server_examples ? std::min<std::size_t>(sc.method.server_examples, pub.size())
                                : pub.size());
    m.public_examples = encode_examples(
      *m.tok, std::vector<mc_example>(pub.begin(), pub.begin() + labelled), cfg.n_positions);
    m.test = encode_examples(*m.tok, data.test, cfg.n_positions);
    m.corpus = document_stream(*m.tok, data.corpus, 0, data.corpus.size());
    if (m.plan.server_step && m.public_examples.empty())
      return error{errc::bad_scenario, "method " + sc.method.name + " needs the server's labelled "
                                         "split (data.dir/public.jsonl)"};
    return s;
  });
}

result<distill_report_summary> server_session::prepare() {
  auto& m = *impl_;
  if (m.simple)
    return distill_report_summary{}; // nothing to build or ship
  return guarded([&]() -> result<distill_report_summary> {
    autocast_scope precision(m.device, m.sc.compute.dtype);
    distill_report_summary rep;
    auto& mp = m.sc.method;
    if (m.plan.ship_auxiliary) {
      aux_params ap;
      ap.method = mp.aux_method;
      ap.start = mp.aux_start;
      ap.cell = mp.aux_cell;
      ap.depth = mp.aux_depth;
      ap.keep_every = mp.aux_keep_every;
      auto aux = build_auxiliary(m.global, ap);
      if (!aux)
        return aux.err();
      m.aux = std::move(aux).value();
      m.aux.model->to(m.device);
      m.has_aux = true;
      if (mp.distill_steps > 0) {
        auto T = std::min<std::int64_t>(mp.distill_seq_len, m.global->config().n_positions);
        auto cut = m.corpus.size() * 9 / 10; // the last tenth is held out
        std::vector<std::int64_t> train(m.corpus.begin(),
                                        m.corpus.begin() + static_cast<std::ptrdiff_t>(cut));
        std::vector<std::int64_t> held(m.corpus.begin() + static_cast<std::ptrdiff_t>(cut),
                                       m.corpus.end());
        distill_params dp;
        dp.loss = mp.distill_loss;
        dp.prompt_length = m.sc.model.prompt_length;
        dp.prompt_std = m.sc.model.prompt_init_std;
        dp.lm = lm_params{mp.distill_steps, mp.distill_batch, T, mp.distill_lr, 0.01, 0.1,
                          0, 4, mix_seed(m.sc.seed, 3), m.sc.compute.dtype};
        auto start = std::chrono::steady_clock::now();
        auto d = distill(m.aux.model, m.global, train, held, dp);
        if (!d)
          return d.err();
        rep.loss_first = d.value().first_loss;
        rep.loss_last = d.value().last_loss;
        rep.heldout = d.value().heldout_loss;
        rep.steps = mp.distill_steps;
        rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      }
      m.aux.model->set_trainable(false);
      m.aux.model->eval();
      // The prompts' depth is the global model's: an auxiliary model that
      // dropped the last layers cannot tell it from its map.
      auto bytes = gpt_bytes(m.aux.model, "auxiliary",
                             {{"to_global", join_map(m.aux.to_global)},
                              {"global_depth", std::to_string(m.global->depth())}});
      if (!bytes)
        return bytes.err();
      m.client_bytes = std::move(bytes).value();
      m.client_id = "auxiliary";
    } else if (m.plan.train) {
      auto bytes = gpt_bytes(m.global, "gpt2");
      if (!bytes)
        return bytes.err();
      m.client_bytes = std::move(bytes).value();
      m.client_id = "global";
    }
    if (m.plan.server_step) {
      server_params sp;
      sp.steps = mp.server_steps;
      sp.batch = mp.server_batch;
      sp.lr = mp.server_lr;
      sp.rounds = std::max<std::uint32_t>(1, m.sc.federation.max_versions());
      sp.distill_weight = mp.server_distill_weight;
      sp.dtype = m.sc.compute.dtype;
      soft_prompt p(prompt_config(m.sc, m.global->config(), m.global->depth()), 0);
      p->to(m.device);
      m.trainer = std::make_unique<server_trainer>(m.global, p, sp,
                                                   m.has_aux ? m.aux.model : gpt(nullptr),
                                                   m.has_aux ? m.aux.to_global
                                                             : std::vector<std::int64_t>{});
    }
    return rep;
  });
}

const std::string& server_session::client_model() const { return impl_->client_bytes; }
std::string server_session::client_model_id() const { return impl_->client_id; }
prompt_set server_session::initial_prompts() const { return impl_->initial; }

prompt_set server_session::layout() const {
  auto l = impl_->initial;
  for (auto& t : l.tensors)
    t.data.clear();
  return l;
}

result<server_step_report> server_session::server_step(const prompt_set& aggregated,
                                                       std::uint64_t seed) {
  auto& m = *impl_;
  if (!m.trainer)
    return error{errc::unsupported, "method " + m.sc.method.name + " (model.kind "
                                      + m.sc.model.kind + ") has no server step"};
  return guarded([&]() -> result<server_step_report> {
    autocast_scope precision(m.device, m.sc.compute.dtype);
    auto start = std::chrono::steady_clock::now();
    auto r = m.trainer->round(aggregated, m.public_examples, seed);
    if (!r)
      return r.err();
    return server_step_report{r.value().prompts, r.value().loss_before, r.value().loss_after,
                              std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
                                .count(),
                              m.trainer->save_state(), m.public_examples.size()};
  });
}

std::optional<error> server_session::restore_server_step(const std::string& optimizer_state) {
  auto& m = *impl_;
  if (!m.trainer)
    return error{errc::unsupported, "method " + m.sc.method.name + " has no server step"};
  return m.trainer->load_state(optimizer_state);
}

result<model_scores> server_session::evaluate(const prompt_set& prompts) {
  auto& m = *impl_;
  if (m.simple) {
    if (auto err = check_layout(m.initial, prompts))
      return *err;
    auto [acc, loss] = m.simple->evaluate(prompts);
    model_scores s;
    s.global_acc = s.global_acc_norm = acc;
    s.global_loss = loss;
    s.n = std::isnan(acc) ? 0 : 1000;
    return s;
  }
  if (auto err = m.prompt->load(prompts))
    return *err;
  return guarded([&]() -> result<model_scores> {
    autocast_scope precision(m.device, m.sc.compute.dtype);
    auto prefix = m.prompt->materialize(); // (L, 2, H, P, hd)
    model_scores s;
    auto g = score(m.global, prefix, m.test);
    s.global_acc = g.acc;
    s.global_acc_norm = g.acc_norm;
    s.global_loss = g.loss;
    s.n = g.n;
    if (m.has_aux) {
      auto a = score(m.aux.model, remap_layers(prefix, m.aux.to_global), m.test);
      s.aux_acc = a.acc;
      s.aux_acc_norm = a.acc_norm;
    }
    return s;
  });
}

std::int64_t server_session::global_parameters() const {
  return impl_->simple ? impl_->simple->parameters() : impl_->global->num_parameters();
}
std::int64_t server_session::aux_parameters() const {
  return impl_->simple ? 0 : impl_->has_aux ? impl_->aux.model->num_parameters() : 0;
}

double server_session::client_task_flops() const {
  auto& m = *impl_;
  if (m.simple)
    return m.simple->task_flops();
  auto& body = m.has_aux ? *m.aux.model : *m.global;
  auto C = static_cast<double>(body.config().n_embd);
  double per_token = static_cast<double>(body.depth()) * 12 * C * C
                     + static_cast<double>(body.config().vocab_size) * C;
  double tokens = 0;
  for (auto& e : m.test)
    tokens += static_cast<double>(e.choices[static_cast<std::size_t>(e.label)].tokens.size());
  tokens /= static_cast<double>(std::max<std::size_t>(1, m.test.size()));
  auto& t = m.sc.training;
  double model_steps = m.plan.train_body ? t.model_steps : 0;
  return tokens * t.batch_size * t.accumulate * per_token
         * (6.0 * model_steps + 4.0 * t.prompt_steps);
}

// -- client ------------------------------------------------------------------------------

struct client_session::impl {
  std::shared_ptr<const simple_model> simple; // model.kind null / mlp
  std::size_t simple_samples = 0;
  gpt body{nullptr};
  std::unique_ptr<tokenizer> tok;
  std::vector<encoded_example> data;
  std::unique_ptr<client_trainer> trainer;
  double compute_params = 0; // multiply-adds per token, forward: depth x 12 C^2 + V C
  double mean_tokens = 0;
  double tokens_per_step = 0;
  std::uint32_t model_steps = 0, prompt_steps = 0;
  std::vector<torch::Tensor> parked; // host copies while offloaded, in state_tensors() order
  std::string device = "cpu";        // where the state lives when it is not parked
  std::string dtype = "f32";         // compute.dtype (models/precision.hpp)
  std::optional<std::pair<std::size_t, std::uint32_t>> shared; // the model file's size and
                                                               // CRC-32 when the body is shared
};

namespace {

/// Frozen bodies shared between client sessions (compute.share_frozen_body):
/// one per model file (its size and CRC-32) and device, alive while a
/// session holds it. The first session on a device loads it; the others
/// take it as it is, without parsing the file again.
struct shared_body {
  std::weak_ptr<models::gpt_impl> body;
  std::vector<std::int64_t> layer_map;
  std::int64_t prompt_depth = 0;
};
using shared_key = std::tuple<std::size_t, std::uint32_t, std::string>;
std::mutex shared_bodies_mu;
std::map<shared_key, shared_body>& shared_bodies() {
  static std::map<shared_key, shared_body> m;
  return m;
}

} // namespace

client_session::client_session() : impl_(std::make_unique<impl>()) {}

std::uint64_t client_session::resident_bytes() const {
  if (!impl_->trainer)
    return 0;
  std::uint64_t n = 0;
  for (auto& t : impl_->trainer->state_tensors())
    n += static_cast<std::uint64_t>(t.numel()) * t.element_size();
  return n;
}

double client_session::offload() {
  auto& m = *impl_;
  if (!m.trainer || !m.parked.empty())
    return 0;
  auto start = std::chrono::steady_clock::now();
  torch::NoGradGuard no_grad;
  for (auto& t : m.trainer->state_tensors()) {
    // The tensor object stays (the optimizer and the modules hold it); its
    // storage moves: a host copy is parked, the device storage is released.
    m.parked.push_back(t.to(torch::kCPU, /*non_blocking=*/false, /*copy=*/true));
    t.set_(torch::empty({0}, t.options()));
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double client_session::restore() {
  auto& m = *impl_;
  if (!m.trainer || m.parked.empty())
    return 0;
  auto start = std::chrono::steady_clock::now();
  torch::NoGradGuard no_grad;
  auto tensors = m.trainer->state_tensors();
  torch::Device dev(m.device);
  for (std::size_t i = 0; i < tensors.size() && i < m.parked.size(); ++i)
    tensors[i].set_(m.parked[i].to(dev));
  m.parked.clear();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double client_session::place(const std::string& device) {
  auto& m = *impl_;
  if (!m.trainer || device == m.device)
    return 0;
  auto start = std::chrono::steady_clock::now();
  if (m.shared) { // the shared body of the other device, made there when it is the first
    std::lock_guard<std::mutex> lock(shared_bodies_mu);
    shared_key key{m.shared->first, m.shared->second, device};
    auto& entry = shared_bodies()[key];
    gpt there{entry.body.lock()};
    if (!there) {
      auto bytes = gpt_bytes(m.body, "auxiliary");
      if (!bytes)
        throw std::runtime_error(bytes.err().text);
      auto st = parse_safetensors(bytes.value(), "the shared body");
      if (!st)
        throw std::runtime_error(st.err().text);
      auto loaded = load_gpt(st.value(), "the shared body");
      if (!loaded)
        throw std::runtime_error(loaded.err().text);
      there = loaded.value();
      there->to(torch::Device(device));
      there->set_trainable(false);
      there->eval();
      auto old = shared_bodies().find(shared_key{m.shared->first, m.shared->second, m.device});
      if (old != shared_bodies().end()) {
        entry.layer_map = old->second.layer_map;
        entry.prompt_depth = old->second.prompt_depth;
      }
      entry.body = there.ptr();
    }
    m.body = there;
    m.trainer->rebind_body(there);
  }
  m.device = device;
  if (m.parked.empty()) { // resident: every state tensor moves (a parked one moves on restore)
    torch::NoGradGuard no_grad;
    torch::Device dev(device);
    for (auto& t : m.trainer->state_tensors())
      t.set_(t.to(dev));
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

const std::string& client_session::device() const { return impl_->device; }
client_session::~client_session() = default;

/// How many tasks a client's learning-rate schedules span (they decay to zero
/// at the end): sync, one per round; async, every update of the run
/// (versions x buffer_size for fedbuff, versions for fedasync): fast clients
/// train many more tasks than slow ones, and none may run out of schedule.
static std::uint32_t client_schedule_tasks(const scenario& sc) {
  auto& f = sc.federation;
  if (f.mode != "async")
    return std::max<std::uint32_t>(1, f.rounds);
  std::uint64_t per_version = strategy_named(f.aggregator).folds_each_update ? 1 : f.buffer_size;
  return static_cast<std::uint32_t>(
    std::clamp<std::uint64_t>(per_version * f.max_versions(), 1, 1u << 30));
}

result<std::shared_ptr<client_session>> client_session::create(const std::string& bytes,
                                                               const scenario& sc,
                                                               std::vector<mc_example> data,
                                                               const std::string& device) {
  auto plan = plan_of(sc.method.name);
  if (!plan)
    return plan.err();
  if (data.empty())
    return error{errc::empty_input, "a client without training examples"};
  std::shared_ptr<client_session> s(new client_session());
  auto& m = *s->impl_;
  if (sc.model.kind != "gpt") {
    if (!bytes.empty())
      return error{errc::malformed, "model.kind " + sc.model.kind + " takes no model file"};
    auto sm = simple_model::create(sc, false);
    if (!sm)
      return sm.err();
    m.simple = sm.value();
    m.simple_samples = data.size();
    return s;
  }
  return guarded([&]() -> result<std::shared_ptr<client_session>> {
    // A body that never trains is shared by the sessions on a device
    // (compute.share_frozen_body): loaded by the first, taken by the others.
    bool share = sc.compute.share_frozen_body
                 && (!plan.value().train_body || sc.training.model_steps == 0);
    std::vector<std::int64_t> layer_map;
    std::int64_t prompt_depth = 0;
    std::unique_lock<std::mutex> lock(shared_bodies_mu, std::defer_lock);
    shared_body* entry = nullptr;
    if (share) {
      m.shared = std::make_pair(bytes.size(), crc32(bytes.data(), bytes.size()));
      lock.lock();
      entry = &shared_bodies()[shared_key{m.shared->first, m.shared->second, device}];
      if (auto held = entry->body.lock()) {
        m.body = gpt(held);
        layer_map = entry->layer_map;
        prompt_depth = entry->prompt_depth;
      }
    }
    m.device = device;
    if (!m.body) {
      auto st = parse_safetensors(bytes, "the received model");
      if (!st)
        return st.err();
      auto body = load_gpt(st.value(), "the received model");
      if (!body)
        return body.err();
      m.body = body.value();
      m.body->to(torch::Device(device));
      // Prompts keep the global layout; an auxiliary model of another depth
      // runs the layers its metadata maps it to.
      prompt_depth = m.body->depth();
      auto meta = st.value().metadata.find("to_global");
      if (meta != st.value().metadata.end() && !meta->second.empty()) {
        layer_map = parse_map(meta->second);
        prompt_depth = *std::max_element(layer_map.begin(), layer_map.end()) + 1;
        // (files written before 2026-12-03 lack it: the map's reach, which
        // is the global depth unless the last layers were dropped)
        auto global = st.value().metadata.find("global_depth");
        if (global != st.value().metadata.end()) {
          char* end = nullptr;
          auto d = std::strtoll(global->second.c_str(), &end, 10);
          if (end == global->second.c_str() || *end != '\0' || d < prompt_depth || d > 4096)
            return error{errc::malformed, "auxiliary model file: global_depth '"
                                            + global->second + "' does not fit its layer map"};
          prompt_depth = d;
        }
        bool identity = static_cast<std::int64_t>(layer_map.size()) == prompt_depth;
        for (std::size_t j = 0; identity && j < layer_map.size(); ++j)
          identity = layer_map[j] == static_cast<std::int64_t>(j);
        if (identity)
          layer_map.clear();
      }
      if (entry) {
        m.body->set_trainable(false);
        m.body->eval();
        entry->body = m.body.ptr();
        entry->layer_map = layer_map;
        entry->prompt_depth = prompt_depth;
      }
    }
    if (lock.owns_lock())
      lock.unlock();
    auto& cfg = m.body->config();
    auto kind = sc.model.tokenizer.empty() ? cfg.tokenizer : sc.model.tokenizer;
    auto tok = make_tokenizer(kind, tokenizer_source(kind, sc.model.vocab_dir, sc.model.checkpoint));
    if (!tok)
      return tok.err();
    m.tok = std::move(tok).value();
    m.data = encode_examples(*m.tok, data, cfg.n_positions);
    models::client_params cp;
    cp.model_steps = plan.value().train_body ? sc.training.model_steps : 0;
    cp.prompt_steps = sc.training.prompt_steps;
    cp.batch = sc.training.batch_size;
    cp.accumulate = sc.training.accumulate;
    cp.model_lr = sc.training.model_lr;
    cp.prompt_lr = sc.training.prompt_lr;
    cp.rounds = client_schedule_tasks(sc);
    cp.dtype = m.dtype = sc.compute.dtype;
    cp.shared_body = share;
    soft_prompt p(prompt_config(sc, cfg, prompt_depth), 0);
    p->to(torch::Device(device));
    m.trainer = std::make_unique<client_trainer>(m.body, p, cp, layer_map);
    auto C = static_cast<double>(cfg.n_embd);
    m.compute_params = static_cast<double>(m.body->depth()) * 12 * C * C
                       + static_cast<double>(cfg.vocab_size) * C;
    double tokens = 0;
    for (auto& e : m.data)
      tokens += static_cast<double>(e.choices[static_cast<std::size_t>(e.label)].tokens.size());
    m.mean_tokens = tokens / static_cast<double>(m.data.size());
    m.tokens_per_step = m.mean_tokens * sc.training.batch_size * sc.training.accumulate;
    m.model_steps = static_cast<std::uint32_t>(cp.model_steps);
    m.prompt_steps = sc.training.prompt_steps;
    return s;
  });
}

result<client_round_report> client_session::round(prompt_set prompts, std::uint64_t seed) {
  auto& m = *impl_;
  if (m.simple) {
    auto r = m.simple->train(std::move(prompts), seed);
    if (!r)
      return r.err();
    client_round_report out;
    out.prompts = std::move(r.value().params);
    out.loss_before = out.prompt_loss_first = r.value().loss_before;
    out.loss_after = out.prompt_loss_last = r.value().loss_after;
    out.num_samples = m.simple_samples;
    out.flops = m.simple->task_flops();
    return out;
  }
  auto r = [&] {
    autocast_scope precision(torch::Device(m.device), m.dtype);
    return m.trainer->round(prompts, m.data, seed);
  }();
  if (!r)
    return r.err();
  auto& v = r.value();
  client_round_report out;
  out.prompts = std::move(v.prompts);
  out.loss_before = v.loss_before;
  out.loss_after = v.loss_after;
  out.model_loss_first = v.model_stage.first;
  out.model_loss_last = v.model_stage.last;
  out.prompt_loss_first = v.prompt_stage.first;
  out.prompt_loss_last = v.prompt_stage.last;
  out.num_samples = v.num_samples;
  // FLOP estimate: a forward pass costs 2 N per token (N multiply-adds);
  // stage "model" adds a backward pass to activations and to weights (6 N in
  // all), stage "prompt" one to activations only (4 N).
  out.flops = m.tokens_per_step * m.compute_params
              * (6.0 * m.model_steps + 4.0 * m.prompt_steps);
  return out;
}

std::int64_t client_session::parameters() const {
  return impl_->simple ? impl_->simple->parameters() : impl_->body->num_parameters();
}

result<calibration> calibrate_reference(const scenario& sc_in, int repeats) {
  if (repeats < 1)
    return error{errc::bad_argument, "calibrate: repeats must be at least 1"};
  auto sc = sc_in;
  sc.method.distill_steps = 0; // the client model's shape is what counts
  auto data = load_task_split(sc);
  if (!data)
    return data.err();
  auto server = server_session::create(sc, data.value());
  if (!server)
    return server.err();
  if (auto prep = server.value()->prepare(); !prep)
    return prep.err();
  auto client = client_session::create(server.value()->client_model(), sc, data.value().train);
  if (!client)
    return client.err();
  calibration out;
  auto prompts = server.value()->initial_prompts();
  if (auto warm = client.value()->round(prompts, mix_seed(sc.seed, 76)); !warm) // not timed
    return warm.err();
  for (int i = 0; i < repeats; ++i) {
    auto start = std::chrono::steady_clock::now();
    auto r = client.value()->round(prompts, mix_seed(sc.seed, 77 + i));
    if (!r)
      return r.err();
    out.seconds.push_back(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    out.task_flops = r.value().flops;
  }
  auto sorted = out.seconds;
  std::sort(sorted.begin(), sorted.end());
  out.median_seconds = sorted[sorted.size() / 2];
  out.gflops_per_s = out.median_seconds > 0 ? out.task_flops / out.median_seconds / 1e9 : 0;
  return out;
}

void set_compute_threads(int n) {
  if (n > 0)
    torch::set_num_threads(n);
  // torch parallelises its own loops over n threads; an OpenBLAS with its own
  // thread pool inside each of them oversubscribes the cores and spins (3x
  // slower training steps on 2 cores, bench/README.md). OpenBLAS is looked up
  // at run time: other BLAS libraries are left as they are.
  using setter = void (*)(int);
  if (auto* f = reinterpret_cast<setter>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads")))
    f(1);
}

} // namespace fedsp
