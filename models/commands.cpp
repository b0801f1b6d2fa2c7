#include "models/commands.hpp"

#include <chrono>
#include <cmath>
#include <fstream>

#include "models/auxiliary.hpp"
#include "models/checkpoint.hpp"
#include "models/scoring.hpp"
#include "models/soft_prompt.hpp"
#include "models/tokenizer.hpp"
#include "models/trainer.hpp"
#include "runtime/dataset.hpp"
#include "runtime/json.hpp"

namespace fedsp {

using namespace fedsp::models;

namespace {

/// A prompt module matching `model` built from a prompt checkpoint: a plain
/// "prefix" (L, 2, H, P, hd) or the reparameterisation's tensors.
result<torch::Tensor> prefix_for(gpt& model, const prompt_set& ps, const std::string& where) {
  auto& c = model->config();
  soft_prompt_config pc;
  pc.depth = model->depth();
  pc.n_head = c.kv_heads();
  pc.head_dim = c.head_dim();
  if (auto* t = ps.find("prefix"); t != nullptr && t->shape.size() == 5) {
    pc.length = t->shape[3];
  } else if (auto* e = ps.find("embedding.weight"); e != nullptr && e->shape.size() == 2) {
    auto* d = ps.find("down.weight");
    pc.reparameterize = true;
    pc.length = e->shape[0];
    pc.hidden = d != nullptr && d->shape.size() == 2 ? d->shape[0] : 0;
  } else {
    return error{errc::shape_mismatch, where + ": neither a 'prefix' tensor nor a "
                                               "reparameterised prompt"};
  }
  soft_prompt p(pc, 0);
  if (auto err = p->load(ps))
    return error{err->code, where + ": prompts do not fit the model: " + err->text};
  return p->materialize();
}

} // namespace

result<pretrain_summary> run_pretrain(const pretrain_options& o, const pretrain_progress& progress) {
  auto cfg = model_preset(o.preset);
  if (!cfg)
    return cfg.err();
  if (o.heldout_fraction <= 0 || o.heldout_fraction >= 1)
    return error{errc::bad_argument, "--heldout must be a fraction in (0, 1)"};
  if (o.steps < 1 || o.batch < 1 || o.seq_len < 2 || o.seq_len > cfg.value().n_positions)
    return error{errc::bad_argument, "steps and batch must be >= 1 and seq-len in [2, "
                                       + std::to_string(cfg.value().n_positions) + "]"};
  auto docs = load_corpus_jsonl(o.corpus);
  if (!docs)
    return docs.err();
  if (docs.value().size() < 2)
    return error{errc::empty_input, o.corpus + ": a held-out split needs at least 2 documents"};
  if (!o.tokenizer.empty())
    cfg.value().tokenizer = o.tokenizer;
  auto tok = make_tokenizer(cfg.value().tokenizer, o.vocab_dir);
  if (!tok)
    return tok.err();
  // The model's vocabulary is the tokenizer's when the preset's is smaller
  // (a -tiny preset given a BPE tokenizer).
  cfg.value().vocab_size = std::max<std::int64_t>(cfg.value().vocab_size, tok.value()->vocab_size());
  auto n = docs.value().size();
  auto held = std::max<std::size_t>(1, static_cast<std::size_t>(std::floor(
                                         static_cast<double>(n) * o.heldout_fraction)));
  auto train = document_stream(*tok.value(), docs.value(), 0, n - held);
  auto heldout = document_stream(*tok.value(), docs.value(), n - held, n);
  gpt model(cfg.value(), o.seed);
  lm_params p;
  p.steps = o.steps;
  p.batch = o.batch;
  p.seq_len = o.seq_len;
  p.lr = o.lr;
  p.weight_decay = o.weight_decay;
  p.eval_every = o.eval_every;
  p.seed = o.seed;
  auto start = std::chrono::steady_clock::now();
  auto rep = pretrain(model, train, heldout, p, [&](std::int64_t s, double l, double h) {
    if (progress)
      progress(s, o.steps, l, h);
  });
  if (!rep)
    return rep.err();
  if (auto err = save_gpt(o.out, model, "gpt2",
                          {{"pretrain_corpus", o.corpus},
                           {"pretrain_steps", std::to_string(o.steps)},
                           {"pretrain_seed", std::to_string(o.seed)},
                           {"heldout_loss", std::to_string(rep.value().heldout_loss)}}))
    return *err;
  pretrain_summary s;
  s.parameters = model->num_parameters();
  s.aux_parameters = build_auxiliary(model, aux_params{}).value().model->num_parameters();
  s.train_tokens = static_cast<std::int64_t>(train.size());
  s.heldout_tokens = static_cast<std::int64_t>(heldout.size());
  s.first_loss = rep.value().first_loss;
  s.last_loss = rep.value().last_loss;
  s.heldout_loss = rep.value().heldout_loss;
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return s;
}

result<eval_summary> run_eval(const eval_options& o) {
  auto model = load_gpt(o.model);
  if (!model)
    return model.err();
  auto& m = model.value();
  auto kind = o.tokenizer.empty() ? m->config().tokenizer : o.tokenizer;
  auto tok = make_tokenizer(kind, tokenizer_source(kind, o.vocab_dir, o.model));
  if (!tok)
    return tok.err();
  if (tok.value()->vocab_size() > m->config().vocab_size)
    return error{errc::bad_argument, "the " + kind + " tokenizer has "
                                       + std::to_string(tok.value()->vocab_size())
                                       + " ids, the model's vocabulary only "
                                       + std::to_string(m->config().vocab_size)};
  torch::Tensor prefix;
  if (!o.prompts.empty()) {
    auto ps = load_prompts(o.prompts);
    if (!ps)
      return ps.err();
    auto p = prefix_for(m, ps.value(), o.prompts);
    if (!p)
      return p.err();
    prefix = p.value();
  }
  auto task = load_task_jsonl(o.task);
  if (!task)
    return task.err();
  try {
    auto examples = encode_examples(*tok.value(), task.value(), m->config().n_positions);
    auto rep = score(m, prefix, examples, o.batch);
    if (!o.out.empty()) {
      std::ofstream out(o.out);
      for (std::size_t i = 0; i < rep.loglik.size(); ++i) {
        json ll = json::array{};
        for (auto v : rep.loglik[i])
          ll.as_array().emplace_back(v);
        out << json(json::object{{"index", i}, {"loglik", ll}, {"pred", rep.pred[i]}}).dump()
            << "\n";
      }
      if (!out)
        return error{errc::io, "cannot write '" + o.out + "'"};
    }
    return eval_summary{rep.acc, rep.acc_norm, rep.n};
  } catch (const c10::Error& e) {
    return error{errc::unknown, std::string("torch: ") + e.what_without_backtrace()};
  }
}

} // namespace fedsp
