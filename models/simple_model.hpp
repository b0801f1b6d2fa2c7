// Model kinds beside GPT, for measuring the runtime itself (bench/overhead):
// workloads any federated-learning framework can run, so its cost per update
// can be compared side by side.
//
//   null  a parameter set of model.parameters floats; a client task returns
//         it unchanged (the trainer does nothing).
//   mlp   a model.mlp_input -> mlp_hidden (ReLU) -> mlp_classes classifier
//         (64 -> 128 -> 10 = 9,610 parameters by default); a client task
//         runs training.prompt_steps plain SGD steps (rate training.prompt_lr)
//         on model.mlp_samples fresh synthetic samples each. The samples come
//         from a fixed random "teacher" (a linear map, argmax) drawn from the
//         scenario's seed, so the test accuracy has something to learn.
//
// The whole parameter set is what travels (as a prompt_set); there is no
// model to ship and no server step. The mlp step runs on LibTorch in float32
// (matrix products through its BLAS), viewing the parameter buffers in place:
// the update is written straight into the task's output. The header keeps
// torch out of its includers.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "runtime/error.hpp"
#include "runtime/prompt_set.hpp"
#include "runtime/scenario.hpp"

namespace fedsp {

class simple_model {
public:
  /// Errors if the scenario's model.kind is not null or mlp. Clients pass
  /// `with_test_set` false: the 1,000 test samples are the server's.
  static result<std::shared_ptr<const simple_model>> create(const scenario& sc,
                                                            bool with_test_set = true);

  prompt_set initial() const;
  std::int64_t parameters() const;
  /// Multiply-adds x 2 of a task (forward + backward = 6 per parameter per sample).
  double task_flops() const;

  struct round_result {
    prompt_set params;
    double loss_before = 0, loss_after = 0;
  };
  /// One client task from `params` (taken: the mlp steps them in place,
  /// the null trainer hands them back as they are), samples from `seed`.
  result<round_result> train(prompt_set params, std::uint64_t seed) const;

  /// mlp: accuracy and mean cross-entropy on the fixed test samples;
  /// null: NaN for both.
  std::pair<double, double> evaluate(const prompt_set& params) const;

  /// n synthetic samples from `seed` into x (n x in) and their labels; a
  /// task's step k draws from mix_seed(task seed, k).
  void samples(std::uint64_t seed, std::size_t n, std::vector<float>& x,
               std::vector<std::int64_t>& y) const;

private:
  simple_model() = default;

  bool mlp_ = false;
  std::uint32_t in_ = 0, hidden_ = 0, classes_ = 0, samples_ = 0, steps_ = 0;
  std::uint64_t null_size_ = 0;
  double lr_ = 0;
  std::uint64_t seed_ = 0;
  std::vector<float> teacher_;           // classes x in
  std::vector<float> test_x_;            // test samples
  std::vector<std::int64_t> test_y_;
};

} // namespace fedsp
