// Mixed precision (compute.dtype; docs/architecture.md, "Devices"). Internal
// to models/: it includes torch.
//
//   f32   nothing changes.
//   bf16  autocast to bfloat16 for the forward and backward passes, on CUDA
//         and on the CPU (libtorch's CPU autocast); no loss scaling (bf16
//         has float32's range).
//   f16   autocast to float16, CUDA only (the CPU autocast of libtorch 1.13
//         has no float16 kernels), with dynamic loss scaling (optimizer_stage).
//
// Autocast caches its cast of each weight for the rest of the scope, which
// spans whole rounds here: optimizer_stage::step() clears that cache after
// every step, or later forward passes would run the weights before the
// step. Softmax and log-softmax run in float32 (HF's recipe; the CPU
// autocast of libtorch 1.13 would leave them in bfloat16).
//
// Whatever trains keeps float32 master weights: autocast casts the inputs
// of matrix products per call, parameters, gradients and AdamW moments stay
// float32, and prompts leave the model as float32 (the wire dtype is the
// scenario's, as before).
#pragma once

#include <string>

#include "models/torch_compat.hpp"

namespace fedsp::models {

/// Autocast on this thread for `device` while in scope (f32: nothing), the
/// previous state restored after; the autocast cast cache is cleared on
/// exit, as torch.autocast does.
class autocast_scope {
public:
  autocast_scope(const torch::Device& device, const std::string& dtype)
    : type_(device.type()), on_(dtype == "bf16" || dtype == "f16") {
    if (!on_)
      return;
    was_on_ = compat::autocast_enabled(type_);
    was_dtype_ = compat::autocast_dtype(type_);
    compat::set_autocast(type_, true, dtype == "bf16" ? at::kBFloat16 : at::kHalf);
    at::autocast::increment_nesting();
  }
  ~autocast_scope() {
    if (!on_)
      return;
    if (at::autocast::decrement_nesting() == 0)
      at::autocast::clear_cache();
    compat::set_autocast(type_, was_on_, was_dtype_);
  }
  autocast_scope(const autocast_scope&) = delete;
  autocast_scope& operator=(const autocast_scope&) = delete;

private:
  c10::DeviceType type_;
  bool on_ = false, was_on_ = false;
  at::ScalarType was_dtype_ = at::kFloat;
};

/// The dtype softmax and log-softmax run in: float32, or float64 for a
/// float64 model (autocast would leave them in bf16 on the CPU).
inline torch::ScalarType at_least_float(const torch::Tensor& t) {
  return t.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
}

} // namespace fedsp::models
