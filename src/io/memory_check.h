// Memory a checkpoint needs once loaded, and the memory the machine has, compared before loading
// so that an oversized model is a ResourceError instead of an out-of-memory kill half-way.
#pragma once

#include <c10/core/ScalarType.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "io/safetensors.h"

namespace internvl::io {

struct MemoryEstimate {
  uint64_t weights = 0;         // every tensor, floating ones converted to the compute dtype
  uint64_t largest_tensor = 0;  // one converted tensor: the transient copy while loading
  uint64_t total() const { return weights + largest_tensor; }
};

// Only the tensors `include` accepts, when given (the parts of a checkpoint a load reads).
MemoryEstimate estimate_load_memory(const Checkpoint& checkpoint, c10::ScalarType dtype,
                                    const std::function<bool(const std::string& name)>& include = {});

// Bytes this process may still allocate on the CPU: INTERNVL_MEMORY_LIMIT_BYTES when set, else
// MemAvailable from /proc/meminfo; nullopt when neither can be read.
std::optional<uint64_t> available_cpu_memory();

// Throws ResourceError naming the checkpoint, the need and the available amount when `needed`
// exceeds `available`; `what_available` says where that figure came from.
void check_memory(const std::string& checkpoint_path, const MemoryEstimate& needed, uint64_t available,
                  const std::string& what_available);

}  // namespace internvl::io
