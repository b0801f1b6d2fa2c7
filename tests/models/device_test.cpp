// compute.device resolution (models/device.hpp) on whatever this libtorch
// sees: the CPU build (CI, this machine) falls back from auto with a note
// and refuses cuda naming the key and torch's report; a CUDA build lists its
// devices.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "models/device.hpp"

namespace fedsp {
namespace {

TEST(devices, cpu_is_the_cpu) {
  auto p = resolve_devices("cpu");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p.value().devices, std::vector<std::string>{"cpu"});
  EXPECT_TRUE(p.value().note.empty());
  EXPECT_FALSE(p.value().cuda());
}

TEST(devices, auto_takes_every_gpu_or_falls_back_to_the_cpu_with_a_note) {
  auto p = resolve_devices("auto");
  ASSERT_TRUE(p.ok());
  if (torch::cuda::is_available()) {
    EXPECT_EQ(p.value().devices.size(), torch::cuda::device_count());
    EXPECT_EQ(p.value().devices.front(), "cuda:0");
  } else {
    EXPECT_EQ(p.value().devices, std::vector<std::string>{"cpu"});
    EXPECT_NE(p.value().note.find("running on the CPU"), std::string::npos) << p.value().note;
    EXPECT_NE(p.value().note.find(cuda_report()), std::string::npos) << p.value().note;
  }
}

TEST(devices, cuda_without_a_gpu_names_the_key_and_what_torch_reports) {
  if (torch::cuda::is_available())
    GTEST_SKIP() << "a CUDA device is visible";
  for (auto spec : {"cuda", "cuda:0", "cuda:0,1"}) {
    auto p = resolve_devices(spec);
    ASSERT_FALSE(p.ok()) << spec;
    EXPECT_NE(p.err().text.find("compute.device"), std::string::npos) << p.err().text;
    EXPECT_NE(p.err().text.find(cuda_report()), std::string::npos) << p.err().text;
    EXPECT_EQ(p.err().code, errc::bad_scenario);
  }
}

TEST(devices, malformed_specs_are_refused) {
  for (auto spec : {"gpu", "cuda:", "cuda:x", "cuda:-1", "CPU", ""}) {
    auto p = resolve_devices(spec);
    EXPECT_FALSE(p.ok()) << spec;
  }
  if (torch::cuda::is_available()) {
    auto n = std::to_string(torch::cuda::device_count());
    EXPECT_FALSE(resolve_devices("cuda:" + n).ok());
    EXPECT_FALSE(resolve_devices("cuda:0,0").ok());
  }
}

TEST(devices, workers_are_placed_round_robin) {
  device_plan p{"cuda:0,1", {"cuda:0", "cuda:1"}, ""};
  EXPECT_EQ(p.device_of_worker(0), "cuda:0");
  EXPECT_EQ(p.device_of_worker(1), "cuda:1");
  EXPECT_EQ(p.device_of_worker(2), "cuda:0");
}

TEST(devices, f32_and_bf16_run_everywhere_and_f16_needs_cuda) {
  device_plan cpu{"cpu", {"cpu"}, ""}, gpu{"cuda:0", {"cuda:0"}, ""};
  for (auto d : {"f32", "bf16"}) {
    EXPECT_FALSE(check_dtype(d, cpu).has_value()) << d;
    EXPECT_FALSE(check_dtype(d, gpu).has_value()) << d;
  }
  EXPECT_FALSE(check_dtype("f16", gpu).has_value());
  auto e = check_dtype("f16", cpu);
  ASSERT_TRUE(e.has_value());
  EXPECT_NE(e->text.find("compute.dtype' is f16 on the CPU"), std::string::npos) << e->text;
  EXPECT_NE(e->text.find("use bf16 or f32"), std::string::npos) << e->text;
  auto bad = check_dtype("f8", cpu);
  ASSERT_TRUE(bad.has_value());
  EXPECT_NE(bad->text.find("not one of f32, bf16, f16"), std::string::npos) << bad->text;
}

} // namespace
} // namespace fedsp
