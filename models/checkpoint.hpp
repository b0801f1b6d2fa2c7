// Model and prompt checkpoints in safetensors files.
//
// Models: Hugging Face checkpoints as published, for every family of gpt.hpp
// (docs/models.md, "Loading a Hugging Face checkpoint"): a folder, a file
// with config.json beside it, or model.safetensors.index.json and its
// shards; F32, F16, BF16. config.json's model_type picks the family and is
// read key by key (an unsupported key or value is refused by name). Names
// lose the family's prefix (`transformer.`, `model.decoder.`, `model.`);
// GPT-2's causal-mask buffers, rotary inv_freq buffers and a tied
// `lm_head.weight` are skipped. fedsp's own files carry their config in
// `__metadata__` (`fedsp_format` = "1", `kind`, the config fields and, for
// auxiliary models, `layer_block`). Every tensor of the model must be
// present with its exact shape; an unknown tensor is an error too. Each
// error names the file and the tensor.
//
// Prompts: one tensor per prompt buffer, metadata `fedsp_format`, `kind` =
// "prompts", `version`.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "models/gpt.hpp"
#include "models/safetensors.hpp"
#include "runtime/prompt_set.hpp"

namespace fedsp::models {

/// Reads a checkpoint (HF layout, of any family, or fedsp's): a file, a
/// folder, or a model.safetensors.index.json.
result<gpt> load_gpt(const std::string& path);

/// Writes `model` with its config (and layer map) in the metadata; `kind` is
/// "gpt2" for a global model, "auxiliary" for an auxiliary one.
std::optional<error> save_gpt(const std::string& path, gpt& model,
                              const std::string& kind = "gpt2",
                              const std::map<std::string, std::string>& extra = {});

/// The same from a file already parsed (`where` names it in errors), and
/// as bytes held in memory (models sent to clients).
result<gpt> load_gpt(st_file& file, const std::string& where);
result<std::string> gpt_bytes(gpt& model, const std::string& kind,
                              const std::map<std::string, std::string>& extra = {});

result<prompt_set> load_prompts(const std::string& path);
std::optional<error> save_prompts(const std::string& path, const prompt_set& prompts);

} // namespace fedsp::models
