#include "io/state_dict.h"

#include <ATen/core/grad_mode.h>
#include <torch/nn/module.h>

#include <algorithm>
#include <sstream>
#include <unordered_set>

#include "common/check.h"
#include "io/tensor_convert.h"

namespace internvl::io {

namespace {

bool is_floating_dtype(DType dtype) {
  switch (dtype) {
    case DType::F16:
    case DType::BF16:
    case DType::F32:
    case DType::F64:
    case DType::F8_E4M3:
    case DType::F8_E5M2:
      return true;
    default:
      return false;
  }
}

std::string shape_string(c10::ArrayRef<int64_t> shape) {
  std::ostringstream out;
  out << '[';
  for (std::size_t i = 0; i < shape.size(); ++i) out << (i ? "," : "") << shape[i];
  out << ']';
  return out.str();
}

struct Entry {
  std::string name;  // module name
  at::Tensor tensor;
};

std::vector<Entry> module_entries(const torch::nn::Module& module) {
  std::vector<Entry> entries;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) entries.push_back({item.key(), item.value()});
  for (const auto& item : module.named_buffers(/*recurse=*/true)) entries.push_back({item.key(), item.value()});
  return entries;
}

BindingCheck check_entries(const std::vector<Entry>& entries, const Checkpoint& checkpoint,
                           const LoadOptions& options) {
  BindingCheck check;
  std::unordered_set<std::string> known;
  for (const auto& e : entries) {
    if (!e.tensor.defined()) continue;
    const std::string key = options.prefix + e.name;
    known.insert(key);
    if (!checkpoint.contains(key)) {
      // `optional` holds module names; the full checkpoint key is accepted too.
      if (options.optional.count(e.name) != 0 || options.optional.count(key) != 0) {
        check.missing_optional.push_back(e.name);
      } else {
        check.missing.push_back(key);
      }
      continue;
    }
    const auto& view = checkpoint.tensor(key);
    if (c10::IntArrayRef(view.shape) != e.tensor.sizes()) {
      check.mismatched.push_back(key + ": checkpoint " + shape_string(view.shape) + " vs module " +
                                 shape_string(e.tensor.sizes()));
    } else if (e.tensor.is_floating_point() && !is_floating_dtype(view.dtype)) {
      check.mismatched.push_back(key + ": checkpoint dtype " + dtype_name(view.dtype) + " but the module expects " +
                                 "floating point");
    }
  }
  for (const auto& name : checkpoint.names()) {  // already sorted
    if (name.compare(0, options.prefix.size(), options.prefix) == 0 && known.count(name) == 0) {
      check.unused.push_back(name);
    }
  }
  return check;
}

}  // namespace

BindingCheck check_state_dict(const torch::nn::Module& module, const Checkpoint& checkpoint,
                              const LoadOptions& options) {
  return check_entries(module_entries(module), checkpoint, options);
}

LoadReport load_state_dict(torch::nn::Module& module, const Checkpoint& checkpoint, const LoadOptions& options) {
  std::vector<Entry> entries = module_entries(module);

  // Pass 1: check everything before touching the module, so an error leaves it unchanged.
  const BindingCheck check = check_entries(entries, checkpoint, options);
  const auto& missing = check.missing;
  const auto& mismatched = check.mismatched;
  LoadReport report;
  report.missing_optional = check.missing_optional;
  if (!missing.empty() || !mismatched.empty()) {
    std::ostringstream msg;
    msg << "checkpoint " << checkpoint.path() << " does not fit the module:";
    if (!missing.empty()) {
      msg << "\n  " << missing.size() << " missing key(s):";
      for (const auto& k : missing) msg << "\n    " << k;
    }
    if (!mismatched.empty()) {
      msg << "\n  " << mismatched.size() << " mismatched key(s):";
      for (const auto& k : mismatched) msg << "\n    " << k;
    }
    throw CheckpointError(msg.str());
  }

  // Pass 2: convert and install one tensor at a time; the module's previous storage is released
  // as each tensor is replaced, so at most one extra tensor is alive.
  at::NoGradGuard no_grad;
  for (auto& e : entries) {
    if (!e.tensor.defined()) continue;
    const std::string key = options.prefix + e.name;
    const auto target_dtype = e.tensor.is_floating_point() ? options.dtype : e.tensor.scalar_type();
    if (checkpoint.contains(key)) {
      const auto& view = checkpoint.tensor(key);
      e.tensor.set_data(to_tensor(view, target_dtype, options.device));
      release_pages(view);
      report.loaded.push_back(e.name);
    } else if (e.tensor.scalar_type() != target_dtype || e.tensor.device() != options.device) {
      // Optional and absent: keep the initial values, in the requested dtype and device.
      e.tensor.set_data(e.tensor.to(at::TensorOptions().device(options.device).dtype(target_dtype)));
    }
  }

  report.unused = check.unused;
  return report;
}

}  // namespace internvl::io
