#include "io/memory_check.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "common/check.h"

namespace internvl::io {
namespace {

bool is_floating(DType dtype) {
  return dtype == DType::F16 || dtype == DType::BF16 || dtype == DType::F32 || dtype == DType::F64 ||
         dtype == DType::F8_E4M3 || dtype == DType::F8_E5M2;
}

std::string mib(uint64_t bytes) {
  std::ostringstream out;
  out << (bytes + (1u << 20) - 1) / (1u << 20) << " MiB";
  return out.str();
}

}  // namespace

MemoryEstimate estimate_load_memory(const Checkpoint& checkpoint, c10::ScalarType dtype,
                                    const std::function<bool(const std::string& name)>& include) {
  const uint64_t target_size = c10::elementSize(dtype);
  MemoryEstimate estimate;
  for (const auto& name : checkpoint.names()) {
    if (include && !include(name)) continue;
    const auto& view = checkpoint.tensor(name);
    // numel * size cannot overflow: the reader checked it against the file size.
    const uint64_t bytes = is_floating(view.dtype) ? static_cast<uint64_t>(view.numel()) * target_size : view.nbytes;
    estimate.weights += bytes;
    estimate.largest_tensor = std::max(estimate.largest_tensor, bytes);
  }
  return estimate;
}

std::optional<uint64_t> available_cpu_memory() {
  if (const char* limit = std::getenv("INTERNVL_MEMORY_LIMIT_BYTES"); limit != nullptr && *limit != '\0') {
    char* end = nullptr;
    errno = 0;
    const unsigned long long value = std::strtoull(limit, &end, 10);
    INTERNVL_CHECK(errno == 0 && end != limit && *end == '\0', InvalidArgument,
                   "INTERNVL_MEMORY_LIMIT_BYTES must be a byte count, got '", limit, "'");
    return value;
  }
  std::ifstream in("/proc/meminfo");
  std::string key;
  uint64_t value = 0;
  std::string unit;
  while (in >> key >> value) {
    std::getline(in, unit);
    if (key == "MemAvailable:") return value * 1024;  // reported in kB
  }
  return std::nullopt;
}

void check_memory(const std::string& checkpoint_path, const MemoryEstimate& needed, uint64_t available,
                  const std::string& what_available) {
  INTERNVL_CHECK(needed.total() <= available, ResourceError, "loading ", checkpoint_path, " needs about ",
                 mib(needed.total()), " (", mib(needed.weights), " of weights + ", mib(needed.largest_tensor),
                 " to convert the largest tensor) but only ", mib(available), " are available (", what_available,
                 "); use a smaller dtype (LoadOptions.dtype) or another device, or set "
                 "LoadOptions.check_memory = false to try anyway");
}

}  // namespace internvl::io
