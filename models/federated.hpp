// The model side of a federated run, behind a torch-free header so actors
// compile without torch. One server_session per run (global model, auxiliary
// model, server trainer), one client_session per client (the model it was
// sent and its trainer). Sessions are used from one thread at a time: the
// actor that owns one submits its work to a worker and waits for the reply.
//
// Methods (docs/architecture.md "One update, from client to published
// version"; docs/methods.md):
//   fedsp             clients get the distilled auxiliary model; alternating
//                     client training; FedAvg; server tunes the prompts on the
//                     global model; the tuned prompts go back.
//   fedprompt         clients get the global model and tune prompts only.
//   fedprompt_single  as fedsp without the server step.
//   local             as fedprompt, but nothing is averaged: each client keeps
//                     its own prompts; the mean over clients is reported.
//   centralized       one party holds all training data, global model, prompts.
//   zeroshot          no training: the global model with its initial prompts.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/dataset.hpp"
#include "runtime/error.hpp"
#include "runtime/prompt_set.hpp"
#include "runtime/scenario.hpp"

namespace fedsp {

/// What a method does, as flags the actors act on.
struct method_plan {
  bool ship_auxiliary = false; // clients get the auxiliary model (else the global)
  bool train_body = false;     // clients run stage "model" too
  bool server_step = false;    // the server tunes on the global model
  bool aggregate = true;       // FedAvg (false: local-only)
  bool train = true;           // false: zero-shot
};

/// Errors on an unknown method name.
result<method_plan> plan_of(const std::string& method);

struct task_split {
  std::vector<mc_example> public_examples; // the server's labelled split
  std::vector<std::string> corpus;         // the server's LM corpus (distillation)
  std::vector<mc_example> train;           // all clients' data, before partitioning
  std::vector<mc_example> test;
};

/// Loads the scenario's data: synthetic, or DIR/{train,test,public}.jsonl
/// and DIR/corpus.jsonl (public and corpus optional: see docs/scenarios.md).
result<task_split> load_task_split(const scenario& sc);

struct model_scores {
  double global_acc = 0, global_acc_norm = 0, global_loss = 0;
  double aux_acc = -1, aux_acc_norm = -1; // -1: no auxiliary model in this method
  std::uint64_t n = 0;
};

struct server_step_report {
  prompt_set prompts;
  double loss_before = 0, loss_after = 0;
  double seconds = 0;
  std::string optimizer_state; // after the step: what a checkpoint keeps
  std::uint64_t examples = 0;  // labelled examples it drew from (method.server_examples)
};

struct distill_report_summary {
  double loss_first = 0, loss_last = 0, heldout = 0;
  double seconds = 0;
  std::int64_t steps = 0;
};

class server_session {
public:
  /// Loads (model.checkpoint) or builds (random, from model.*) the global
  /// model and the tokenizer, and encodes the server's and the test data.
  /// Its models live on `device` (the server's worker's: worker 0).
  static result<std::shared_ptr<server_session>> create(const scenario& sc,
                                                        const task_split& data,
                                                        const std::string& device = "cpu");
  ~server_session();

  /// Builds the auxiliary model and distils it (method.distill_*); a no-op
  /// for methods that do not ship it.
  result<distill_report_summary> prepare();

  /// A resumed run: the server step's optimizer state from a checkpoint
  /// (server_step_report::optimizer_state), after prepare(). Errors: no
  /// server step, a state that does not load.
  std::optional<error> restore_server_step(const std::string& optimizer_state);

  /// The safetensors file clients receive ("" when they need none).
  const std::string& client_model() const;
  std::string client_model_id() const;

  prompt_set initial_prompts() const;
  prompt_set layout() const;

  /// The server step (fedsp): tunes `aggregated` on the global model.
  result<server_step_report> server_step(const prompt_set& aggregated, std::uint64_t seed);

  /// Test scores of the global model and (if any) the auxiliary model, both
  /// running `prompts` (mapped to the auxiliary depth).
  result<model_scores> evaluate(const prompt_set& prompts);

  std::int64_t global_parameters() const;
  std::int64_t aux_parameters() const; // 0 when there is none

  /// Modelled work of one client task (FLOPs, the estimate clients report):
  /// the client model's multiply-adds per token x the mean tokens of a step
  /// (from the test split: the server never sees client data) x the stages'
  /// steps. The virtual clock divides it by a client's speed.
  double client_task_flops() const;

private:
  server_session();
  struct impl;
  std::unique_ptr<impl> impl_;
};

struct client_round_report {
  prompt_set prompts;
  double loss_before = 0, loss_after = 0;      // probe of the local data
  double model_loss_first = 0, model_loss_last = 0;
  double prompt_loss_first = 0, prompt_loss_last = 0;
  std::uint64_t num_samples = 0;
  double flops = 0;                            // estimate of the round's work
};

class client_session {
public:
  /// From the model file the server sent (validated like any checkpoint),
  /// placed on `device` ("cpu", "cuda:N": the device of the worker that
  /// builds it).
  static result<std::shared_ptr<client_session>> create(const std::string& model_bytes,
                                                        const scenario& sc,
                                                        std::vector<mc_example> data,
                                                        const std::string& device = "cpu");
  ~client_session();

  /// One round with the steps and rates of the scenario it was created
  /// from (fixed at creation: the stages' schedules span the whole run).
  result<client_round_report> round(prompt_set prompts, std::uint64_t seed);
  std::int64_t parameters() const;

  /// Paging (runtime/pager.hpp): the bytes the session keeps on its device
  /// between tasks (body and prompt parameters, gradients, AdamW moments);
  /// offload() moves them to host memory and frees them on the device,
  /// restore() brings them back, bit for bit. Each returns its seconds. On
  /// the CPU the host copy is a copy: the logic runs, nothing is saved.
  std::uint64_t resident_bytes() const;
  double offload();
  double restore();

  /// Moves the session (every state tensor, or its parked host copy) to
  /// `device`, where the next task's worker runs; returns the seconds (0
  /// when it is there already). A client's tasks go to its own worker, so
  /// this moves only after a failover to a worker on another device.
  double place(const std::string& device);
  const std::string& device() const;

private:
  client_session();
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// `fedsp calibrate`: runs one client task of the scenario (its method,
/// model and training settings; no distillation) `repeats` times on this
/// machine and reports the task's FLOP estimate and the median seconds, so
/// that compute.reference_gflops can name this machine as speed 1.
struct calibration {
  double task_flops = 0;
  double median_seconds = 0;
  double gflops_per_s = 0;
  std::vector<double> seconds;
};
result<calibration> calibrate_reference(const scenario& sc, int repeats);

/// Sets torch's intra-op thread count (process-wide) and keeps OpenBLAS,
/// when it is the BLAS in use, to one thread inside them.
void set_compute_threads(int n);

} // namespace fedsp
