#include "models/scoring.hpp"

#include "models/precision.hpp"

#include <cmath>

namespace fedsp::models {

namespace {
constexpr std::int64_t ignore_index = -100;
}

std::vector<encoded_example> encode_examples(const tokenizer& tok,
                                             const std::vector<mc_example>& data,
                                             std::int64_t n_positions) {
  auto start = tok.context_start(); // before an empty context

  std::vector<encoded_example> out;
  out.reserve(data.size());
  for (auto& ex : data) {
    encoded_example e;
    e.label = ex.label;
    for (auto& choice : ex.choices) {
      std::string ctx = ex.context, cont = choice;
      auto keep = ctx.find_last_not_of(' ');
      auto spaces = keep == std::string::npos ? ctx.size() : ctx.size() - keep - 1;
      cont = ctx.substr(ctx.size() - spaces) + cont;
      ctx.resize(ctx.size() - spaces);
      auto whole = tok.encode(ctx + cont);
      auto ctx_ids = tok.encode(ctx);
      std::vector<std::int64_t> c(ctx_ids.begin(), ctx_ids.end());
      std::vector<std::int64_t> a;
      if (whole.size() >= ctx_ids.size())
        a.assign(whole.begin() + static_cast<std::ptrdiff_t>(ctx_ids.size()), whole.end());
      if (c.empty())
        c.insert(c.end(), start.begin(), start.end());
      if (static_cast<std::int64_t>(a.size()) >= n_positions)
        a.resize(static_cast<std::size_t>(n_positions - 1));
      auto room = static_cast<std::size_t>(n_positions) - a.size();
      if (c.size() > room)
        c.erase(c.begin(), c.end() - static_cast<std::ptrdiff_t>(room));
      encoded_sequence s;
      s.tokens = c;
      s.answer_start = static_cast<std::int64_t>(c.size());
      s.tokens.insert(s.tokens.end(), a.begin(), a.end());
      e.choices.push_back(std::move(s));
      e.choice_bytes.push_back(std::max<std::size_t>(1, choice.size()));
    }
    out.push_back(std::move(e));
  }
  return out;
}

std::pair<torch::Tensor, torch::Tensor> make_batch(const std::vector<const encoded_sequence*>& seqs) {
  std::int64_t B = static_cast<std::int64_t>(seqs.size()), T = 1;
  for (auto* s : seqs)
    T = std::max<std::int64_t>(T, static_cast<std::int64_t>(s->tokens.size()));
  auto idx = torch::zeros({B, T}, torch::kLong);              // (B, T)
  auto tgt = torch::full({B, T}, ignore_index, torch::kLong); // (B, T)
  auto ia = idx.accessor<std::int64_t, 2>();
  auto ta = tgt.accessor<std::int64_t, 2>();
  for (std::int64_t b = 0; b < B; ++b) {
    auto& s = *seqs[static_cast<std::size_t>(b)];
    auto n = static_cast<std::int64_t>(s.tokens.size());
    for (std::int64_t i = 0; i < n; ++i)
      ia[b][i] = s.tokens[static_cast<std::size_t>(i)];
    for (std::int64_t i = std::max<std::int64_t>(0, s.answer_start - 1); i + 1 < n; ++i)
      ta[b][i] = s.tokens[static_cast<std::size_t>(i + 1)];
  }
  return {idx, tgt};
}

torch::Tensor answer_loss(const torch::Tensor& logits, const torch::Tensor& targets) {
  auto V = logits.size(2);
  return torch::nn::functional::cross_entropy(
    logits.reshape({-1, V}), targets.to(logits.device()).reshape({-1}),
    torch::nn::functional::CrossEntropyFuncOptions().ignore_index(ignore_index));
}

score_report score(gpt& model, const torch::Tensor& prefix,
                   const std::vector<encoded_example>& data, std::int64_t batch) {
  torch::NoGradGuard no_grad;
  std::vector<const encoded_sequence*> seqs;
  for (auto& e : data)
    for (auto& c : e.choices)
      seqs.push_back(&c);
  std::vector<double> ll(seqs.size()), ntok(seqs.size());
  for (std::size_t s = 0; s < seqs.size(); s += static_cast<std::size_t>(batch)) {
    auto e = std::min(seqs.size(), s + static_cast<std::size_t>(batch));
    std::vector<const encoded_sequence*> chunk(seqs.begin() + static_cast<std::ptrdiff_t>(s),
                                               seqs.begin() + static_cast<std::ptrdiff_t>(e));
    auto [idx, tgt] = make_batch(chunk);
    auto logits = model->forward(idx, prefix);                          // (B, T, V)
    auto logp = torch::log_softmax(logits, -1, at_least_float(logits)); // (B, T, V)
    tgt = tgt.to(logp.device());
    auto mask = tgt.ne(ignore_index);                                     // (B, T)
    auto tok = logp.gather(2, tgt.clamp_min(0).unsqueeze(2)).squeeze(2);  // (B, T)
    auto sums = (tok * mask).sum(1).to(torch::kCPU, torch::kDouble).contiguous(); // (B)
    auto counts = mask.sum(1).to(torch::kCPU, torch::kDouble).contiguous();       // (B)
    for (std::size_t i = s; i < e; ++i) {
      ll[i] = sums.data_ptr<double>()[i - s];
      ntok[i] = counts.data_ptr<double>()[i - s];
    }
  }
  score_report rep;
  rep.n = data.size();
  std::size_t r = 0;
  double hits = 0, hits_norm = 0, nll = 0;
  for (auto& ex : data) {
    std::vector<double> row;
    int best = 0, best_norm = 0;
    double best_ll = -INFINITY, best_norm_ll = -INFINITY;
    for (std::size_t c = 0; c < ex.choices.size(); ++c, ++r) {
      row.push_back(ll[r]);
      double norm = ll[r] / static_cast<double>(ex.choice_bytes[c]);
      if (ll[r] > best_ll)
        best_ll = ll[r], best = static_cast<int>(c);
      if (norm > best_norm_ll)
        best_norm_ll = norm, best_norm = static_cast<int>(c);
      if (static_cast<int>(c) == ex.label)
        nll += -ll[r] / std::max(1.0, ntok[r]);
    }
    hits += best == ex.label;
    hits_norm += best_norm == ex.label;
    rep.loglik.push_back(std::move(row));
    rep.pred.push_back(best);
  }
  if (rep.n > 0) {
    auto n = static_cast<double>(rep.n);
    rep.acc = hits / n;
    rep.acc_norm = hits_norm / n;
    rep.loss = nll / n;
  }
  return rep;
}

} // namespace fedsp::models
