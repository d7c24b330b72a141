// Basic layers with checkpoint-compatible parameter names. Parameters are allocated
// uninitialised in the target dtype/device (io::load_state_dict fills them in place), so a
// large model never holds an fp32 copy next to its compute copy.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/TensorOptions.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <string>

namespace internvl::nn {

// Where and in which dtype a module's parameters are created.
struct ParamInit {
  c10::ScalarType dtype = c10::kFloat;
  c10::Device device = c10::kCPU;
  c10::TensorOptions options() const { return c10::TensorOptions().dtype(dtype).device(device); }
};

// y = x Wᵀ + b; weight [out, in], bias [out].
class LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(int64_t in_features, int64_t out_features, bool bias, const ParamInit& init);
  at::Tensor forward(const at::Tensor& x) const;  // [..., in] -> [..., out]
  at::Tensor weight;
  at::Tensor bias;  // undefined when absent
};
TORCH_MODULE(Linear);

enum class NormKind { kRMSNorm, kLayerNorm };
NormKind parse_norm_kind(const std::string& norm_type);  // "rms_norm" | "layer_norm"

// RMSNorm (weight only; statistics in float32 as the official InternRMSNorm / LlamaRMSNorm) or
// LayerNorm (weight and bias).
class NormImpl : public torch::nn::Module {
 public:
  NormImpl(NormKind kind, int64_t dim, double eps, const ParamInit& init);
  at::Tensor forward(const at::Tensor& x) const;  // [..., dim]
  // Residual add fused with the norm: returns (norm(residual + x), residual + x), the sum rounded
  // to the dtype first as the models add; one kernel on CUDA when enabled.
  std::pair<at::Tensor, at::Tensor> forward_add(const at::Tensor& x, const at::Tensor& residual) const;
  NormKind kind;
  double eps;
  at::Tensor weight;
  at::Tensor bias;  // LayerNorm only
};
TORCH_MODULE(Norm);

// Plain RMSNorm math shared by every RMSNorm in the models.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

// Fills every floating parameter with small random values (norm weights near 1) — for
// benchmarks and tests of real-sized models without checkpoints. Parameters on a device are
// drawn there (with the device's default generator, reseeded), so the values differ from CPU's.
void init_random(torch::nn::Module& module, uint64_t seed);

}  // namespace internvl::nn
