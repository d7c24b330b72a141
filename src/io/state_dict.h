// Strict binding of a checkpoint to a module by the official parameter names.
#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <set>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace torch::nn {
class Module;
}

namespace internvl::io {

struct LoadOptions {
  c10::ScalarType dtype = c10::kFloat;  // floating parameters are converted to this dtype
  c10::Device device = c10::kCPU;
  std::string prefix;                   // prepended to the module's names to find checkpoint keys
  std::set<std::string> optional;       // module names that may be absent (left as initialised)
};

struct LoadReport {
  std::vector<std::string> loaded;          // module names that were filled
  std::vector<std::string> missing_optional;
  std::vector<std::string> unused;          // checkpoint keys under `prefix` that nothing used
};

// Fills every parameter and buffer of `module` from `checkpoint`. Throws CheckpointError listing
// every missing (non-optional) key and every shape mismatch. Converts one tensor at a time.
LoadReport load_state_dict(torch::nn::Module& module, const Checkpoint& checkpoint,
                           const LoadOptions& options = {});

}  // namespace internvl::io
