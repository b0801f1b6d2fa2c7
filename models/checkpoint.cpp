#include "models/checkpoint.hpp"
#include "runtime/files.hpp"

#include <cmath>
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

/// The config as metadata strings, and back: fedsp's own files carry their
/// config this way. A field left out has its default, so files from before
/// the families read as GPT-2.
std::string num(double v) {
  std::ostringstream s;
  s.precision(17);
  s << v;
  return s.str();
}

std::map<std::string, std::string> config_metadata(const decoder_config& c) {
  // GPT-2's fields always; the others only where they differ from the
  // defaults, so a GPT-2 file is byte for byte what it was before families
  // (the model's size on the wire feeds the virtual clock).
  std::map<std::string, std::string> m{{"n_layer", std::to_string(c.n_layer)},
                                       {"n_head", std::to_string(c.n_head)},
                                       {"n_embd", std::to_string(c.n_embd)},
                                       {"n_positions", std::to_string(c.n_positions)},
                                       {"vocab_size", std::to_string(c.vocab_size)},
                                       {"layer_norm_epsilon", num(c.layer_norm_epsilon)},
                                       {"tokenizer", c.tokenizer}};
  const decoder_config d;
  auto put = [&](const char* key, bool differs, std::string value) {
    if (differs)
      m[key] = std::move(value);
  };
  put("family", c.family != d.family, c.family);
  put("model_type", c.model_type != d.model_type, c.model_type);
  put("n_kv_head", c.n_kv_head != d.n_kv_head, std::to_string(c.n_kv_head));
  put("ffn_dim", c.ffn_dim != d.ffn_dim, std::to_string(c.ffn_dim));
  put("head_dim", c.head_dim_set != d.head_dim_set, std::to_string(c.head_dim_set));
  put("pre_norm", c.pre_norm != d.pre_norm, c.pre_norm ? "1" : "0");
  put("final_norm", c.final_norm != d.final_norm, c.final_norm ? "1" : "0");
  put("embed_dim", c.embed_dim != d.embed_dim, std::to_string(c.embed_dim));
  put("rope_theta", c.rope_theta != d.rope_theta, num(c.rope_theta));
  put("rope_type", c.rope_type != d.rope_type, c.rope_type);
  put("rope_factor", c.rope_factor != d.rope_factor, num(c.rope_factor));
  put("rope_low_freq_factor", c.rope_low_freq_factor != d.rope_low_freq_factor,
      num(c.rope_low_freq_factor));
  put("rope_high_freq_factor", c.rope_high_freq_factor != d.rope_high_freq_factor,
      num(c.rope_high_freq_factor));
  put("rope_original_max", c.rope_original_max != d.rope_original_max,
      std::to_string(c.rope_original_max));
  put("qkv_bias", c.qkv_bias != d.qkv_bias, c.qkv_bias ? "1" : "0");
  put("o_bias", c.o_bias != d.o_bias, c.o_bias ? "1" : "0");
  put("tie_word_embeddings", c.tie_word_embeddings != d.tie_word_embeddings,
      c.tie_word_embeddings ? "1" : "0");
  return m;
}

result<double> meta_real(const std::map<std::string, std::string>& meta, const std::string& key,
                         const std::string& where) {
  auto& text = meta.at(key);
  try {
    std::size_t used = 0;
    auto v = std::stod(text, &used);
    if (used == text.size() && std::isfinite(v))
      return v;
  } catch (...) {
  }
  return error{errc::malformed, where + ": metadata '" + key + "' is not a number"};
}

/// The config of a fedsp file from its metadata.
result<std::pair<decoder_config, std::vector<std::int64_t>>>
config_from_metadata(const std::map<std::string, std::string>& meta, const std::string& where) {
  decoder_config c;
  for (auto [key, field] : {std::pair{"n_layer", &c.n_layer}, {"n_head", &c.n_head},
                            {"n_embd", &c.n_embd}, {"n_positions", &c.n_positions},
                            {"vocab_size", &c.vocab_size}}) {
    auto v = meta_int(meta, key, where);
    if (!v)
      return v.err();
    *field = v.value();
  }
  for (auto [key, field] : {std::pair{"n_kv_head", &c.n_kv_head}, {"ffn_dim", &c.ffn_dim},
                            {"head_dim", &c.head_dim_set}, {"embed_dim", &c.embed_dim},
                            {"rope_original_max", &c.rope_original_max}})
    if (meta.count(key)) {
      auto v = meta_int(meta, key, where);
      if (!v)
        return v.err();
      *field = v.value();
    }
  for (auto [key, field] : {std::pair{"layer_norm_epsilon", &c.layer_norm_epsilon},
                            {"rope_theta", &c.rope_theta}, {"rope_factor", &c.rope_factor},
                            {"rope_low_freq_factor", &c.rope_low_freq_factor},
                            {"rope_high_freq_factor", &c.rope_high_freq_factor}})
    if (meta.count(key)) {
      auto v = meta_real(meta, key, where);
      if (!v)
        return v.err();
      *field = v.value();
    }
  for (auto [key, field] : {std::pair{"pre_norm", &c.pre_norm}, {"final_norm", &c.final_norm},
                            {"qkv_bias", &c.qkv_bias}, {"o_bias", &c.o_bias},
                            {"tie_word_embeddings", &c.tie_word_embeddings}})
    if (auto it = meta.find(key); it != meta.end())
      *field = it->second == "1";
  for (auto [key, field] : {std::pair{"family", &c.family}, {"model_type", &c.model_type},
                            {"tokenizer", &c.tokenizer}, {"rope_type", &c.rope_type}})
    if (auto it = meta.find(key); it != meta.end())
      *field = it->second;
  if (auto bad = c.check())
    return error{bad->code, where + ": " + bad->text};
  std::vector<std::int64_t> layers;
  if (auto it = meta.find("layer_block"); it != meta.end()) {
    std::stringstream ss(it->second);
    for (std::string item; std::getline(ss, item, ',');) {
      try {
        layers.push_back(std::stoll(item));
      } catch (...) {
        return error{errc::malformed, where + ": metadata 'layer_block' holds '" + item + "'"};
      }
    }
  } else {
    for (std::int64_t l = 0; l < c.n_layer; ++l)
      layers.push_back(l);
  }
  return std::pair{c, layers};
}

/// config.json of a Hugging Face checkpoint: `model_type` picks the family;
/// each key is honoured, checked to hold the one value fedsp computes, or
/// known not to change the computation. Any other key is refused by name.
class hf_config {
public:
  hf_config(const json& doc, std::string path) : doc_(doc), path_(std::move(path)) {}

  const json* get(const std::string& key) {
    seen_.insert(key);
    auto* v = doc_.find(key);
    return v != nullptr && !v->is_null() ? v : nullptr;
  }
  std::optional<error> integer(const std::string& key, std::int64_t& out, bool required) {
    auto* v = get(key);
    if (v == nullptr)
      return required ? std::optional<error>(bad("'" + key + "' missing")) : std::nullopt;
    if (!v->is_number() || v->as_number() < 1 || v->as_number() != std::floor(v->as_number()))
      return bad("'" + key + "' is not a positive integer");
    out = static_cast<std::int64_t>(v->as_number());
    return std::nullopt;
  }
  std::optional<error> real(const std::string& key, double& out) {
    auto* v = get(key);
    if (v == nullptr)
      return std::nullopt;
    if (!v->is_number() || !(v->as_number() > 0))
      return bad("'" + key + "' is not a positive number");
    out = v->as_number();
    return std::nullopt;
  }
  std::optional<error> boolean(const std::string& key, bool& out) {
    auto* v = get(key);
    if (v == nullptr)
      return std::nullopt;
    if (!v->is_bool())
      return bad("'" + key + "' is not true or false");
    out = v->as_bool();
    return std::nullopt;
  }
  /// The key, when present, must hold `want` (a string, bool or number).
  std::optional<error> must_be(const std::string& key, const json& want, const std::string& why) {
    auto* v = get(key);
    if (v == nullptr || v->dump() == want.dump())
      return std::nullopt;
    return bad("'" + key + "' = " + v->dump() + " is not supported (" + why + ")");
  }
  /// Keys that do not change what the model computes in fedsp.
  void harmless(std::initializer_list<const char*> keys) {
    for (auto* k : keys)
      seen_.insert(k);
  }
  std::optional<error> unknown_keys() {
    for (auto& [key, v] : doc_.as_object())
      if (!seen_.count(key))
        return bad("key '" + key + "' is not supported by fedsp (model_type "
                   + (doc_.find("model_type") && doc_.find("model_type")->is_string()
                        ? doc_.find("model_type")->as_string()
                        : std::string("?"))
                   + "); docs/models.md lists the keys each family reads");
    return std::nullopt;
  }
  error bad(const std::string& what) const { return error{errc::malformed, path_ + ": " + what}; }

private:
  const json& doc_;
  std::string path_;
  std::set<std::string> seen_;
};

#define FEDSP_TRY(expr)                                                                          \
  if (auto e_ = (expr))                                                                          \
    return *e_;

result<decoder_config> gpt2_from_json(hf_config& h) {
  decoder_config c;
  c.tokenizer = "gpt2";
  FEDSP_TRY(h.integer("n_layer", c.n_layer, true));
  FEDSP_TRY(h.integer("n_head", c.n_head, true));
  FEDSP_TRY(h.integer("n_embd", c.n_embd, true));
  FEDSP_TRY(h.integer("n_positions", c.n_positions, true));
  FEDSP_TRY(h.integer("vocab_size", c.vocab_size, true));
  FEDSP_TRY(h.integer("n_inner", c.ffn_dim, false));
  FEDSP_TRY(h.real("layer_norm_epsilon", c.layer_norm_epsilon));
  FEDSP_TRY(h.must_be("activation_function", "gelu_new", "fedsp computes gelu_new"));
  FEDSP_TRY(h.must_be("scale_attn_weights", true, "scores are always scaled"));
  FEDSP_TRY(h.must_be("scale_attn_by_inverse_layer_idx", false, "not implemented"));
  FEDSP_TRY(h.must_be("add_cross_attention", false, "decoder-only"));
  FEDSP_TRY(h.must_be("tie_word_embeddings", true, "GPT-2's head is tied"));
  h.harmless({"n_ctx", "resid_pdrop", "embd_pdrop", "attn_pdrop", "summary_type",
              "summary_use_proj", "summary_activation", "summary_proj_to_labels",
              "summary_first_dropout", "reorder_and_upcast_attn", "task_specific_params"});
  return c;
}

result<decoder_config> opt_from_json(hf_config& h) {
  decoder_config c;
  c.family = c.model_type = "opt";
  c.tokenizer = "opt";
  FEDSP_TRY(h.integer("num_hidden_layers", c.n_layer, true));
  FEDSP_TRY(h.integer("num_attention_heads", c.n_head, true));
  FEDSP_TRY(h.integer("hidden_size", c.n_embd, true));
  FEDSP_TRY(h.integer("max_position_embeddings", c.n_positions, true));
  FEDSP_TRY(h.integer("vocab_size", c.vocab_size, true));
  FEDSP_TRY(h.integer("ffn_dim", c.ffn_dim, true));
  FEDSP_TRY(h.integer("word_embed_proj_dim", c.embed_dim, false));
  FEDSP_TRY(h.boolean("do_layer_norm_before", c.pre_norm));
  bool removed = false;
  FEDSP_TRY(h.boolean("_remove_final_layer_norm", removed));
  c.final_norm = c.pre_norm && !removed; // HF: a final LayerNorm only with pre-norm
  FEDSP_TRY(h.must_be("activation_function", "relu", "fedsp computes OPT with ReLU"));
  FEDSP_TRY(h.must_be("enable_bias", true, "OPT's linear maps have biases"));
  FEDSP_TRY(h.must_be("layer_norm_elementwise_affine", true, "LayerNorms have weights"));
  FEDSP_TRY(h.must_be("tie_word_embeddings", true, "OPT's head is tied"));
  h.harmless({"dropout", "attention_dropout", "activation_dropout", "layerdrop", "init_std",
              "prefix", "keys_to_ignore_at_inference"});
  return c;
}

result<decoder_config> llama_from_json(hf_config& h, const std::string& type) {
  decoder_config c;
  c.family = "llama";
  c.model_type = type;
  c.tokenizer = "hf";
  c.tie_word_embeddings = false; // LlamaConfig's default
  FEDSP_TRY(h.integer("num_hidden_layers", c.n_layer, true));
  FEDSP_TRY(h.integer("num_attention_heads", c.n_head, true));
  FEDSP_TRY(h.integer("num_key_value_heads", c.n_kv_head, false));
  FEDSP_TRY(h.integer("hidden_size", c.n_embd, true));
  FEDSP_TRY(h.integer("max_position_embeddings", c.n_positions, true));
  FEDSP_TRY(h.integer("vocab_size", c.vocab_size, true));
  FEDSP_TRY(h.integer("intermediate_size", c.ffn_dim, true));
  FEDSP_TRY(h.integer("head_dim", c.head_dim_set, false));
  FEDSP_TRY(h.real("rms_norm_eps", c.layer_norm_epsilon));
  FEDSP_TRY(h.real("rope_theta", c.rope_theta));
  FEDSP_TRY(h.boolean("tie_word_embeddings", c.tie_word_embeddings));
  FEDSP_TRY(h.must_be("hidden_act", "silu", "fedsp computes SwiGLU with SiLU"));
  FEDSP_TRY(h.must_be("mlp_bias", false, "the MLP has no biases"));
  if (type == "qwen2") {
    c.qkv_bias = true;
    FEDSP_TRY(h.must_be("use_sliding_window", false, "sliding-window attention is off"));
    h.harmless({"sliding_window", "max_window_layers"}); // unused while it is off
  } else {
    bool bias = false;
    FEDSP_TRY(h.boolean("attention_bias", bias));
    c.qkv_bias = c.o_bias = bias;
  }
  if (type == "mistral") {
    // Within the window, sliding-window attention is full causal attention:
    // sequences are held to the window (docs/models.md).
    std::int64_t window = 0;
    FEDSP_TRY(h.integer("sliding_window", window, false));
    if (window > 0)
      c.n_positions = std::min(c.n_positions, window);
  }
  if (auto* rs = h.get("rope_scaling")) {
    if (!rs->is_object())
      return h.bad("'rope_scaling' is not an object");
    auto* kind = rs->find("rope_type");
    if (kind == nullptr)
      kind = rs->find("type");
    if (kind == nullptr || !kind->is_string())
      return h.bad("'rope_scaling' has no rope_type");
    c.rope_type = kind->as_string();
    if (c.rope_type != "linear" && c.rope_type != "llama3" && c.rope_type != "default")
      return h.bad("'rope_scaling' type '" + c.rope_type
                   + "' is not supported (linear and llama3 are)");
    auto number = [&](const char* key, double& out) -> std::optional<error> {
      auto* v = rs->find(key);
      if (v == nullptr)
        return std::nullopt;
      if (!v->is_number() || !(v->as_number() > 0))
        return h.bad(std::string("'rope_scaling.") + key + "' is not a positive number");
      out = v->as_number();
      return std::nullopt;
    };
    FEDSP_TRY(number("factor", c.rope_factor));
    FEDSP_TRY(number("low_freq_factor", c.rope_low_freq_factor));
    FEDSP_TRY(number("high_freq_factor", c.rope_high_freq_factor));
    double original = static_cast<double>(c.rope_original_max);
    FEDSP_TRY(number("original_max_position_embeddings", original));
    c.rope_original_max = static_cast<std::int64_t>(original);
    for (auto& [key, v] : rs->as_object())
      if (key != "rope_type" && key != "type" && key != "factor" && key != "low_freq_factor"
          && key != "high_freq_factor" && key != "original_max_position_embeddings")
        return h.bad("'rope_scaling." + key + "' is not supported");
    if (c.rope_type == "llama3" && !(c.rope_high_freq_factor > c.rope_low_freq_factor))
      return h.bad("'rope_scaling': high_freq_factor must exceed low_freq_factor");
  }
  FEDSP_TRY(h.must_be("rope_interleaved", false, "rotary halves, as LlamaForCausalLM")); // SmolLM
  if (auto* layers = h.get("layer_types")) { // newer configs: per-layer attention kinds
    if (!layers->is_array())
      return h.bad("'layer_types' is not a list");
    for (auto& kind : layers->as_array())
      if (!kind.is_string() || kind.as_string() != "full_attention")
        return h.bad("'layer_types' holds " + kind.dump()
                     + ": only full_attention is supported (sliding-window layers are not)");
  }
  h.harmless({"attention_dropout", "pretraining_tp", "rope_type", "is_llama_config"});
  return c;
}

#undef FEDSP_TRY

/// The config of an HF checkpoint from config.json in `folder`.
result<decoder_config> config_from_json(const std::string& folder, const std::string& weights) {
  auto path = (std::filesystem::path(folder) / "config.json").string();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    return error{errc::io, weights + ": no fedsp metadata and no config.json beside it ('"
                             + path + "')"};
  auto text = read_bounded_file(path, limits::MiB, "model config");
  if (!text)
    return text.err();
  auto doc = json::parse(text.value());
  if (!doc || !doc.value().is_object())
    return error{errc::malformed, path + ": not a JSON object"};
  hf_config h(doc.value(), path);
  std::string type = "gpt2"; // GPT-2 configs from before model_type
  if (auto* t = h.get("model_type")) {
    if (!t->is_string())
      return h.bad("'model_type' is not a string");
    type = t->as_string();
  }
  h.harmless({"architectures", "torch_dtype", "transformers_version", "_name_or_path",
              "bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id", "sep_token_id",
              "decoder_start_token_id", "use_cache", "initializer_range", "is_decoder",
              "output_past", "gradient_checkpointing", "return_dict", "output_hidden_states",
              "output_attentions", "id2label", "label2id", "torchscript", "use_bfloat16"});
  result<decoder_config> c = error{errc::malformed, ""};
  if (type == "gpt2")
    c = gpt2_from_json(h);
  else if (type == "opt")
    c = opt_from_json(h);
  else if (type == "llama" || type == "mistral" || type == "qwen2")
    c = llama_from_json(h, type);
  else
    return h.bad("model_type '" + type
                 + "' is not supported (gpt2, opt, llama, mistral, qwen2 are)");
  if (!c)
    return c.err();
  if (auto e = h.unknown_keys())
    return *e;
  if (auto bad = c.value().check())
    return h.bad(bad->text);
  return c;
}

/// The prefix Hugging Face's checkpoints put before fedsp's names.
std::vector<std::string> hf_prefixes(const decoder_config& c) {
  if (c.family == "gpt2")
    return {"transformer."};
  if (c.family == "opt")
    return {"model.decoder.", "decoder."};
  return {"model."};
}

} // namespace

namespace {
st_file gpt_file(gpt& model, const std::string& kind,
                 const std::map<std::string, std::string>& extra);
} // namespace

namespace {

/// A sharded checkpoint: model.safetensors.index.json's weight_map names the
/// shard of each tensor; shards are files in the same folder.
result<st_file> read_shards(const std::string& index_path) {
  auto text = read_bounded_file(index_path, 64 * limits::MiB, "checkpoint index");
  if (!text)
    return text.err();
  auto doc = json::parse(text.value());
  if (!doc || !doc.value().is_object())
    return error{errc::malformed, index_path + ": not a JSON object"};
  auto* map = doc.value().find("weight_map");
  if (map == nullptr || !map->is_object() || map->as_object().empty())
    return error{errc::malformed, index_path + ": no 'weight_map' object"};
  std::map<std::string, std::vector<std::string>> by_shard; // shard -> tensors it must hold
  for (auto& [name, file] : map->as_object()) {
    if (!file.is_string())
      return error{errc::malformed, index_path + ": weight_map['" + name + "'] is not a file name"};
    auto& f = file.as_string();
    if (f.empty() || f.find('/') != std::string::npos || f.find('\\') != std::string::npos
        || f == "." || f == "..")
      return error{errc::malformed, index_path + ": shard '" + f
                                      + "' is not a plain file name in the index's folder"};
    by_shard[f].push_back(name);
  }
  auto folder = std::filesystem::path(index_path).parent_path();
  st_file all;
  for (auto& [shard, names] : by_shard) {
    auto path = (folder / shard).string();
    auto part = read_safetensors(path);
    if (!part)
      return part.err();
    for (auto& name : names)
      if (!part.value().tensors.count(name))
        return error{errc::malformed, path + ": tensor '" + name
                                        + "' is missing (the index places it in this shard)"};
    for (auto& [name, t] : part.value().tensors) {
      if (all.tensors.count(name))
        return error{errc::malformed, path + ": tensor '" + name + "' is in two shards"};
      all.tensors.emplace(name, std::move(t));
    }
  }
  return all;
}

} // namespace

result<gpt> load_gpt(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  auto single = path, index = std::string();
  if (fs::is_directory(path, ec)) {
    single = (fs::path(path) / "model.safetensors").string();
    index = (fs::path(path) / "model.safetensors.index.json").string();
    if (fs::exists(single, ec))
      index.clear();
    else if (!fs::exists(index, ec))
      return error{errc::io, path + ": the folder holds neither model.safetensors nor "
                                    "model.safetensors.index.json"};
  } else if (ends_with(path, ".index.json")) {
    index = path;
  }
  auto file = index.empty() ? read_safetensors(single) : read_shards(index);
  if (!file)
    return file.err();
  return load_gpt(file.value(), index.empty() ? single : index);
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
  decoder_config cfg;
  std::vector<std::int64_t> layers;
  bool hf = !st.metadata.count("fedsp_format");
  if (!hf) {
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
    auto c = config_from_json(std::filesystem::path(path).parent_path().string(), path);
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

  // Normalise HF names: drop the family's prefix; skip the causal-mask and
  // rotary buffers some checkpoints carry, and a tied head (checked below).
  std::map<std::string, const st_tensor*> found;
  const st_tensor* tied_head = nullptr;
  for (auto& [raw, t] : st.tensors) {
    std::string name = raw;
    if (hf)
      for (auto& prefix : hf_prefixes(cfg))
        if (name.rfind(prefix, 0) == 0) {
          name = name.substr(prefix.size());
          break;
        }
    if (hf
        && (ends_with(name, ".attn.bias") || ends_with(name, ".attn.masked_bias")
            || ends_with(name, ".rotary_emb.inv_freq")))
      continue;
    if (name == "lm_head.weight" && cfg.tie_word_embeddings) {
      tied_head = &t;
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
      return error{errc::malformed, path + ": unexpected tensor '" + name + "' (not part of a "
                                      + cfg.model_type + " model with this config)"};
  if (tied_head != nullptr
      && tied_head->shape != std::vector<std::int64_t>{cfg.vocab_size, cfg.embed_width()})
    return error{errc::shape_mismatch,
                 path + ": tensor 'lm_head.weight' does not match the token embedding it is "
                        "tied to"};
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
  for (auto& [key, value] : config_metadata(c))
    st.metadata[key] = value;
  std::string layers;
  for (auto b : model->layer_block())
    layers += (layers.empty() ? "" : ",") + std::to_string(b);
  st.metadata["layer_block"] = layers;
  for (auto& item : model->named_parameters()) {
    auto t = item.value().detach().to(torch::kCPU, torch::kFloat).contiguous();
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
