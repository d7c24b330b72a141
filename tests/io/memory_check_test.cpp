// Memory estimate of a checkpoint (weights converted to the compute dtype + one transient tensor)
// and the check against available memory.
#include "io/memory_check.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <string>

#include "internvl/error.h"
#include "io/safetensors_writer.h"

using namespace internvl;

namespace {

TEST(MemoryEstimate, FloatTensorsTakeTheTargetDtypeOthersKeepTheirSize) {
  const std::string dir = ::testing::TempDir() + "/internvl_memory_" + std::to_string(::getpid());
  ASSERT_EQ(::system(("mkdir -p " + dir).c_str()), 0);
  const std::string path = dir + "/model.safetensors";
  io::write_safetensors(path, {{"f32", at::zeros({10}, at::kFloat)},
                               {"bf16", at::zeros({6}, at::kBFloat16)},
                               {"i64", at::zeros({3}, at::kLong)}});
  const io::Checkpoint checkpoint(dir);
  const auto fp32 = io::estimate_load_memory(checkpoint, at::kFloat);
  EXPECT_EQ(fp32.weights, 10u * 4 + 6 * 4 + 3 * 8);
  EXPECT_EQ(fp32.largest_tensor, 40u);
  const auto bf16 = io::estimate_load_memory(checkpoint, at::kBFloat16);
  EXPECT_EQ(bf16.weights, 10u * 2 + 6 * 2 + 3 * 8);
  EXPECT_EQ(bf16.largest_tensor, 24u);  // the int64 tensor is now the largest
  EXPECT_EQ(bf16.total(), bf16.weights + bf16.largest_tensor);

  EXPECT_NO_THROW(io::check_memory(dir, fp32, fp32.total(), "test"));
  try {
    io::check_memory(dir, fp32, fp32.total() - 1, "test figure");
    FAIL() << "no ResourceError";
  } catch (const ResourceError& e) {
    EXPECT_NE(std::string(e.what()).find(dir), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("test figure"), std::string::npos) << e.what();
  }
  ::unlink(path.c_str());
  ::rmdir(dir.c_str());
}

TEST(MemoryEstimate, AvailableMemoryFromProcOrEnvironment) {
  ::unsetenv("INTERNVL_MEMORY_LIMIT_BYTES");
  const auto measured = io::available_cpu_memory();
  ASSERT_TRUE(measured.has_value());  // Linux: /proc/meminfo
  EXPECT_GT(*measured, 0u);
  ::setenv("INTERNVL_MEMORY_LIMIT_BYTES", "12345", 1);
  EXPECT_EQ(io::available_cpu_memory(), 12345u);
  ::setenv("INTERNVL_MEMORY_LIMIT_BYTES", "12k", 1);
  EXPECT_THROW(io::available_cpu_memory(), InvalidArgument);
  ::unsetenv("INTERNVL_MEMORY_LIMIT_BYTES");
}

}  // namespace
