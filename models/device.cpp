#include "models/device.hpp"

#include <cmath>
#include <sstream>

#include <torch/torch.h>

namespace fedsp {

double device_index(const std::string& name) {
  if (name.rfind("cuda:", 0) == 0)
    return std::stod(name.substr(5));
  return -1;
}

std::string device_name(double index) {
  if (index == -1)
    return "cpu";
  if (index >= 0 && index < 1e6 && index == std::floor(index))
    return "cuda:" + std::to_string(static_cast<long>(index));
  return "unknown";
}

std::string cuda_report() {
  if (!torch::cuda::is_available()) {
    // at::hasCUDA(): whether this libtorch was built with CUDA at all.
    return at::hasCUDA() ? "no CUDA device visible to libtorch (built with CUDA; check the "
                           "driver and CUDA_VISIBLE_DEVICES)"
                         : "no CUDA device: this libtorch was built without CUDA (Debian's "
                           "libtorch is CPU-only; build with a CUDA libtorch through Torch_DIR)";
  }
  auto n = torch::cuda::device_count();
  return std::to_string(n) + " CUDA device" + (n == 1 ? "" : "s") + " visible to libtorch";
}

result<device_plan> resolve_devices(const std::string& spec) {
  device_plan plan;
  plan.requested = spec;
  auto bad = [&](const std::string& why) {
    return error{errc::bad_scenario, "key 'compute.device' is '" + spec + "': " + why};
  };
  auto count = torch::cuda::is_available() ? static_cast<long>(torch::cuda::device_count()) : 0L;
  if (spec == "cpu") {
    plan.devices = {"cpu"};
    return plan;
  }
  if (spec == "auto") {
    for (long d = 0; d < count; ++d)
      plan.devices.push_back("cuda:" + std::to_string(d));
    if (plan.devices.empty()) {
      plan.devices = {"cpu"};
      plan.note = "compute.device auto: " + cuda_report() + "; running on the CPU";
    }
    return plan;
  }
  if (spec == "cuda" || spec.rfind("cuda:", 0) == 0) {
    if (count == 0)
      return bad(cuda_report());
    if (spec == "cuda") {
      for (long d = 0; d < count; ++d)
        plan.devices.push_back("cuda:" + std::to_string(d));
      return plan;
    }
    std::stringstream list(spec.substr(5));
    for (std::string item; std::getline(list, item, ',');) {
      std::size_t used = 0;
      long d = -1;
      try {
        d = std::stol(item, &used);
      } catch (...) {
      }
      if (used != item.size() || item.empty() || d < 0)
        return bad("'" + item + "' is not a device number");
      if (d >= count)
        return bad("there is no cuda:" + item + " (" + cuda_report() + ")");
      auto name = "cuda:" + std::to_string(d);
      for (auto& have : plan.devices)
        if (have == name)
          return bad(name + " is named twice");
      plan.devices.push_back(name);
    }
    if (plan.devices.empty())
      return bad("no device number after 'cuda:'");
    return plan;
  }
  return bad("not one of auto, cpu, cuda, cuda:N, cuda:N,M,...");
}

std::optional<error> check_dtype(const std::string& dtype, const device_plan& plan) {
  if (dtype == "f32")
    return std::nullopt;
  if (dtype == "bf16")
    return std::nullopt; // autocast on CUDA and on the CPU
  if (dtype == "f16") {
    if (plan.cuda())
      return std::nullopt;
    return error{errc::bad_scenario,
                 "key 'compute.dtype' is f16 on the CPU: libtorch's CPU autocast has no "
                 "float16 kernels; use bf16 or f32 there, f16 on a CUDA device"};
  }
  return error{errc::bad_scenario, "key 'compute.dtype' is '" + dtype + "': not one of f32, bf16, f16"};
}

} // namespace fedsp
