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

// What binding `module` to `checkpoint` would find, without reading tensor data.
struct BindingCheck {
  std::vector<std::string> missing;           // checkpoint keys the module needs that are absent
  std::vector<std::string> mismatched;        // "key: checkpoint [..] vs module [..]" (shape or dtype kind)
  std::vector<std::string> missing_optional;  // module names allowed to be absent
  std::vector<std::string> unused;            // checkpoint keys under `prefix` the module does not have
};
// Works on modules whose tensors live on the meta device too (nothing is allocated).
BindingCheck check_state_dict(const torch::nn::Module& module, const Checkpoint& checkpoint,
                              const LoadOptions& options = {});

// Fills every parameter and buffer of `module` from `checkpoint`. Throws CheckpointError listing
// every missing (non-optional) key and every shape mismatch. Converts one tensor at a time.
LoadReport load_state_dict(torch::nn::Module& module, const Checkpoint& checkpoint,
                           const LoadOptions& options = {});

}  // namespace internvl::io
