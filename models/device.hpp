// Compute devices: what `compute.device` names, resolved against what this
// libtorch sees. The header is torch-free (actors and the CLI include it);
// device.cpp holds the one place that asks torch about CUDA, so the CPU
// build of Debian's libtorch and a CUDA libtorch share the same code
// (docs/architecture.md, "Devices").
//
//   auto       every CUDA device libtorch sees; none: the CPU, with a note
//   cpu        the CPU
//   cuda       every CUDA device; none is an error naming what torch reports
//   cuda:N     device N
//   cuda:0,1   those devices
//
// Workers are placed round-robin: worker w runs on devices[w % n].
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "runtime/error.hpp"

namespace fedsp {

struct device_plan {
  std::string requested;            // compute.device as written
  std::vector<std::string> devices; // "cpu" or "cuda:N", one or more
  std::string note;                 // why `auto` fell back to the CPU, else ""

  const std::string& device_of_worker(std::size_t w) const { return devices[w % devices.size()]; }
  bool cuda() const { return devices.front() != "cpu"; }
};

/// A device as a number, for metric lists: "cpu" is -1, "cuda:N" is N;
/// device_name inverts it ("unknown" for anything else, NaN included).
double device_index(const std::string& name);
std::string device_name(double index);

/// What torch reports about CUDA, in words ("no CUDA device: this libtorch
/// was built without CUDA", "2 CUDA devices", ...).
std::string cuda_report();

/// Resolves `spec`; an error names the key (compute.device), the value and
/// what torch reports.
result<device_plan> resolve_devices(const std::string& spec);

/// compute.dtype on the resolved devices: f32 and bf16 everywhere; f16 on
/// CUDA devices only (models/precision.hpp), refused on the CPU with the
/// reason.
std::optional<error> check_dtype(const std::string& dtype, const device_plan& plan);

} // namespace fedsp
