#include "models/checkpoint.hpp"
#include "runtime/files.hpp"

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "models/safetensors.hpp"
#include "runtime/json.hpp"

namespace fedsp::models {

namespace {

constexpr const char* format_version = "1";

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

result<std::int64_t> meta_int(const std::map<std::string, std::string>& meta,
                              const std::string& key, const std::string& where) {
  auto it = meta.find(key);
  if (it == meta.end())
    return error{errc::malformed, where + ": metadata lacks '" + key + "'"};
  try {
    std::size_t used = 0;
    auto v = std::stoll(it->second, &used);
    if (used == it->second.size())
      return static_cast<std::int64_t>(v);
  } catch (...) {
  }
  return error{errc::malformed, where + ": metadata '" + key + "' is not an integer"};
}

/// The config of a fedsp file from its metadata.
result<std::pair<gpt2_config, std::vector<std::int64_t>>>
config_from_metadata(const std::map<std::string, std::string>& meta, const std::string& where) {
  gpt2_config c;
  for (auto [key, field] : {std::pair{"n_layer", &c.n_layer}, {"n_head", &c.n_head},
                            {"n_embd", &c.n_embd}, {"n_positions", &c.n_positions},
                            {"vocab_size", &c.vocab_size}}) {
    auto v = meta_int(meta, key, where);
    if (!v)
      return v.err();
    *field = v.value();
  }
  if (auto it = meta.find("layer_norm_epsilon"); it != meta.end())
    c.layer_norm_epsilon = std::stod(it->second);
  if (auto it = meta.find("tokenizer"); it != meta.end())
    c.tokenizer = it->second;
  std::vector<std::int64_t> layers;
  if (auto it = meta.find("layer_block"); it != meta.end()) {
    std::stringstream ss(it->second);
    for (std::string item; std::getline(ss, item, ',');)
      layers.push_back(std::stoll(item));
  } else {
    for (std::int64_t l = 0; l < c.n_layer; ++l)
      layers.push_back(l);
  }
  return std::pair{c, layers};
}

/// The config of an HF checkpoint from config.json beside it.
result<gpt2_config> config_from_json(const std::string& weights_path) {
  auto path = (std::filesystem::path(weights_path).parent_path() / "config.json").string();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    return error{errc::io, weights_path + ": no fedsp metadata and no config.json beside it ('"
                             + path + "')"};
  auto text = read_bounded_file(path, limits::MiB, "model config");
  if (!text)
    return text.err();
  auto doc = json::parse(text.value());
  if (!doc || !doc.value().is_object())
    return error{errc::malformed, path + ": not a JSON object"};
  gpt2_config c;
  c.tokenizer = "gpt2";
  for (auto [key, field] : {std::pair{"n_layer", &c.n_layer}, {"n_head", &c.n_head},
                            {"n_embd", &c.n_embd}, {"n_positions", &c.n_positions},
                            {"vocab_size", &c.vocab_size}}) {
    auto* v = doc.value().find(key);
    if (v == nullptr || !v->is_number() || v->as_number() < 1)
      return error{errc::malformed, path + ": '" + key + "' missing or not a positive integer"};
    *field = static_cast<std::int64_t>(v->as_number());
  }
  if (auto* eps = doc.value().find("layer_norm_epsilon"); eps && eps->is_number())
    c.layer_norm_epsilon = eps->as_number();
  if (c.n_embd % c.n_head != 0)
    return error{errc::malformed, path + ": n_embd is not divisible by n_head"};
  return c;
}

} // namespace

namespace {
st_file gpt_file(gpt& model, const std::string& kind,
                 const std::map<std::string, std::string>& extra);
} // namespace

result<gpt> load_gpt(const std::string& path) {
  auto file = read_safetensors(path);
  if (!file)
    return file.err();
  return load_gpt(file.value(), path);
}

result<std::string> gpt_bytes(gpt& model, const std::string& kind,
                              const std::map<std::string, std::string>& extra) {
  return encode_safetensors(gpt_file(model, kind, extra));
}

std::optional<error> save_gpt(const std::string& path, gpt& model, const std::string& kind,
                              const std::map<std::string, std::string>& extra) {
  return write_safetensors(path, gpt_file(model, kind, extra));
}

result<gpt> load_gpt(st_file& st, const std::string& path) {
  gpt2_config cfg;
  std::vector<std::int64_t> layers;
  if (st.metadata.count("fedsp_format")) {
    if (st.metadata["fedsp_format"] != format_version)
      return error{errc::unsupported_version, path + ": fedsp_format "
                                                + st.metadata["fedsp_format"] + ", this build reads "
                                                + format_version};
    auto c = config_from_metadata(st.metadata, path);
    if (!c)
      return c.err();
    cfg = c.value().first;
    layers = c.value().second;
  } else {
    auto c = config_from_json(path);
    if (!c)
      return c.err();
    cfg = c.value();
    for (std::int64_t l = 0; l < cfg.n_layer; ++l)
      layers.push_back(l);
  }
  std::int64_t n_blocks = 0;
  for (auto b : layers) {
    if (b < 0 || b > 4096)
      return error{errc::malformed, path + ": layer_block holds " + std::to_string(b)};
    n_blocks = std::max(n_blocks, b + 1);
  }
  gpt model(cfg, n_blocks, layers);

  // Normalise names: drop "transformer."; skip buffers and the tied head.
  std::map<std::string, const st_tensor*> found;
  const st_tensor* lm_head = nullptr;
  for (auto& [raw, t] : st.tensors) {
    std::string name = raw.rfind("transformer.", 0) == 0 ? raw.substr(12) : raw;
    if (ends_with(name, ".attn.bias") || ends_with(name, ".attn.masked_bias"))
      continue;
    if (name == "lm_head.weight") {
      lm_head = &t;
      continue;
    }
    found[name] = &t;
  }
  torch::NoGradGuard no_grad;
  std::set<std::string> used;
  for (auto& item : model->named_parameters()) {
    auto it = found.find(item.key());
    if (it == found.end())
      return error{errc::malformed, path + ": tensor '" + item.key() + "' is missing"};
    auto& want = item.value();
    if (it->second->shape != want.sizes().vec()) {
      std::string got;
      for (auto d : it->second->shape)
        got += (got.empty() ? "" : ",") + std::to_string(d);
      return error{errc::shape_mismatch, path + ": tensor '" + item.key() + "' has shape ["
                                           + got + "], the config needs "
                                           + c10::str(want.sizes())};
    }
    auto floats = it->second->to_floats(item.key());
    if (!floats)
      return error{errc::malformed, path + ": " + floats.err().text};
    want.copy_(torch::from_blob(floats.value().data(), want.sizes(), torch::kFloat));
    used.insert(item.key());
  }
  for (auto& [name, t] : found)
    if (!used.count(name))
      return error{errc::malformed, path + ": unexpected tensor '" + name
                                      + "' (not part of a GPT-2 with this config)"};
  if (lm_head != nullptr
      && lm_head->shape != std::vector<std::int64_t>{cfg.vocab_size, cfg.n_embd})
    return error{errc::shape_mismatch, path + ": tensor 'lm_head.weight' does not match wte"};
  return model;
}

namespace {

st_file gpt_file(gpt& model, const std::string& kind,
                 const std::map<std::string, std::string>& extra) {
  st_file st;
  auto& c = model->config();
  st.metadata = extra;
  st.metadata["fedsp_format"] = format_version;
  st.metadata["kind"] = kind;
  st.metadata["n_layer"] = std::to_string(c.n_layer);
  st.metadata["n_head"] = std::to_string(c.n_head);
  st.metadata["n_embd"] = std::to_string(c.n_embd);
  st.metadata["n_positions"] = std::to_string(c.n_positions);
  st.metadata["vocab_size"] = std::to_string(c.vocab_size);
  std::ostringstream eps;
  eps.precision(17);
  eps << c.layer_norm_epsilon;
  st.metadata["layer_norm_epsilon"] = eps.str();
  st.metadata["tokenizer"] = c.tokenizer;
  std::string layers;
  for (auto b : model->layer_block())
    layers += (layers.empty() ? "" : ",") + std::to_string(b);
  st.metadata["layer_block"] = layers;
  for (auto& item : model->named_parameters()) {
    auto t = item.value().detach().contiguous().to(torch::kFloat);
    st.tensors[item.key()] = st_tensor::from_floats(t.sizes().vec(), t.data_ptr<float>());
  }
  return st;
}

} // namespace

result<prompt_set> load_prompts(const std::string& path) {
  auto file = read_safetensors(path);
  if (!file)
    return file.err();
  auto& st = file.value();
  if (st.metadata["kind"] != "prompts")
    return error{errc::malformed, path + ": not a prompt checkpoint (metadata kind '"
                                    + st.metadata["kind"] + "')"};
  if (st.metadata["fedsp_format"] != format_version)
    return error{errc::unsupported_version, path + ": fedsp_format '"
                                              + st.metadata["fedsp_format"] + "'"};
  prompt_set ps;
  auto v = meta_int(st.metadata, "version", path);
  if (!v)
    return v.err();
  ps.version = static_cast<std::uint64_t>(v.value());
  // The prompt set's own tensor order, kept in `tensor_order`.
  std::vector<std::string> order;
  std::stringstream names(st.metadata["tensor_order"]);
  for (std::string n; std::getline(names, n, ',');)
    order.push_back(n);
  if (order.size() != st.tensors.size())
    return error{errc::malformed, path + ": metadata tensor_order does not list the "
                                    + std::to_string(st.tensors.size()) + " tensors"};
  for (auto& name : order) {
    auto it = st.tensors.find(name);
    if (it == st.tensors.end())
      return error{errc::malformed, path + ": tensor '" + name + "' is missing"};
    auto& t = it->second;
    auto floats = t.to_floats(name);
    if (!floats)
      return error{errc::malformed, path + ": " + floats.err().text};
    tensor_buffer b{name, {}, std::move(floats).value()};
    for (auto d : t.shape)
      b.shape.push_back(static_cast<std::uint32_t>(d));
    ps.tensors.push_back(std::move(b));
  }
  if (auto err = check_values(ps))
    return error{err->code, path + ": " + err->text};
  return ps;
}

std::optional<error> save_prompts(const std::string& path, const prompt_set& prompts) {
  st_file st;
  std::string order;
  for (auto& t : prompts.tensors) {
    if (t.name.find(',') != std::string::npos)
      return error{errc::bad_argument, "prompt tensor name '" + t.name + "' contains a comma"};
    order += (order.empty() ? "" : ",") + t.name;
  }
  st.metadata = {{"fedsp_format", format_version},
                 {"kind", "prompts"},
                 {"version", std::to_string(prompts.version)},
                 {"tensor_order", order}};
  for (auto& t : prompts.tensors) {
    std::vector<std::int64_t> shape(t.shape.begin(), t.shape.end());
    st.tensors[t.name] = st_tensor::from_floats(shape, t.data.data());
  }
  return write_safetensors(path, st);
}

} // namespace fedsp::models
