// The few places where LibTorch's C++ API differs between Debian's CPU
// libtorch 1.13 and the 2.x builds a GPU machine has (pip torch's
// libtorch, found through Torch_DIR). Everything version-dependent lives
// here, so the rest of models/ reads the same for both
// (docs/architecture.md, "Devices"). Internal to models/: it includes torch.
#pragma once

#include <ATen/autocast_mode.h>
#include <torch/torch.h>

namespace fedsp::models::compat {

/// The key of a parameter's entry in an optimizer's state map: a string
/// made from the TensorImpl address in 1.13, the address itself in 2.x.
inline auto optimizer_state_key(const torch::Tensor& p) {
#if TORCH_VERSION_MAJOR >= 2
  return static_cast<void*>(p.unsafeGetTensorImpl());
#else
  return c10::guts::to_string(p.unsafeGetTensorImpl());
#endif
}

} // namespace fedsp::models::compat

namespace fedsp::models::compat {

/// Turns autocast on or off for one device type on this thread, with the
/// dtype it casts to. 2.4 and later name the device type in one call; 1.13
/// has one pair of calls per device type.
inline void set_autocast(c10::DeviceType type, bool on, at::ScalarType dtype) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  at::autocast::set_autocast_enabled(type, on);
  at::autocast::set_autocast_dtype(type, dtype);
#else
  if (type == c10::DeviceType::CUDA) {
    at::autocast::set_enabled(on);
    at::autocast::set_autocast_gpu_dtype(dtype);
  } else {
    at::autocast::set_cpu_enabled(on);
    at::autocast::set_autocast_cpu_dtype(dtype);
  }
#endif
}

/// Whether autocast is on for `type` on this thread, and its dtype.
inline bool autocast_enabled(c10::DeviceType type) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  return at::autocast::is_autocast_enabled(type);
#else
  return type == c10::DeviceType::CUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
}
inline at::ScalarType autocast_dtype(c10::DeviceType type) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  return at::autocast::get_autocast_dtype(type);
#else
  return type == c10::DeviceType::CUDA ? at::autocast::get_autocast_gpu_dtype()
                                       : at::autocast::get_autocast_cpu_dtype();
#endif
}

} // namespace fedsp::models::compat
