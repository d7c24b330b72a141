#include "nn/layers.h"

#include <ATen/ATen.h>
#include <ATen/core/Generator.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>

#include <functional>
#include <mutex>

#include "common/check.h"
#include "kernels/cpu_gemv.h"
#include "kernels/cuda_ops.h"

namespace internvl::nn {

LinearImpl::LinearImpl(int64_t in_features, int64_t out_features, bool with_bias, const ParamInit& init) {
  weight = register_parameter("weight", at::empty({out_features, in_features}, init.options()));
  if (with_bias) bias = register_parameter("bias", at::empty({out_features}, init.options()));
}

at::Tensor LinearImpl::forward(const at::Tensor& x) const {
  // Decode steps (a few rows) on CPU: a bandwidth-bound GEMV that streams the weights faster.
  if (kernels::cpu_gemv_supported(x, weight, bias)) return kernels::cpu_gemv(x, weight, bias);
  return at::linear(x, weight, bias);
}

NormKind parse_norm_kind(const std::string& norm_type) {
  if (norm_type == "rms_norm") return NormKind::kRMSNorm;
  if (norm_type == "layer_norm") return NormKind::kLayerNorm;
  INTERNVL_THROW(InvalidArgument, "norm_type '", norm_type, "' is neither 'rms_norm' nor 'layer_norm'");
}

NormImpl::NormImpl(NormKind kind_, int64_t dim, double eps_, const ParamInit& init) : kind(kind_), eps(eps_) {
  weight = register_parameter("weight", at::empty({dim}, init.options()));
  if (kind == NormKind::kLayerNorm) bias = register_parameter("bias", at::empty({dim}, init.options()));
}

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  if (kernels::norm_supported(x, weight)) return kernels::rms_norm(x, weight, eps);
  const auto x32 = x.to(at::kFloat);
  const auto normed = x32 * at::rsqrt(x32.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return weight * normed.to(x.scalar_type());
}

at::Tensor NormImpl::forward(const at::Tensor& x) const {
  if (kind == NormKind::kRMSNorm) return rms_norm(x, weight, eps);
  if (kernels::norm_supported(x, weight)) return kernels::layer_norm(x, weight, bias, eps);
  if (x.scalar_type() == at::kFloat) return at::layer_norm(x, {weight.size(0)}, weight, bias, eps);
  // Reduced precision: statistics in float32.
  return at::layer_norm(x.to(at::kFloat), {weight.size(0)}, weight.to(at::kFloat), bias.to(at::kFloat), eps)
      .to(x.scalar_type());
}

std::pair<at::Tensor, at::Tensor> NormImpl::forward_add(const at::Tensor& x, const at::Tensor& residual) const {
  if (kernels::norm_supported(x, weight) && residual.sizes() == x.sizes() && residual.scalar_type() == x.scalar_type() &&
      residual.is_cuda()) {
    return kind == NormKind::kRMSNorm ? kernels::add_rms_norm(x, residual, weight, eps)
                                      : kernels::add_layer_norm(x, residual, weight, bias, eps);
  }
  auto sum = residual + x;
  return {forward(sum), sum};
}

void init_random(torch::nn::Module& module, uint64_t seed) {
  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  at::NoGradGuard no_grad;
  for (auto& item : module.named_parameters(/*recurse=*/true)) {
    auto& param = item.value();
    if (!at::isFloatingType(param.scalar_type())) continue;
    const auto& name = item.key();
    const bool is_norm_weight = param.dim() == 1 && name.find("norm") != std::string::npos &&
                                name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0;
    if (!param.device().is_cpu()) {
      // Generated on the device: a 6B model's values drawn on the host would take minutes. Uses
      // (and reseeds) the device's default generator.
      if (is_norm_weight) {
        param.fill_(1.0);
        continue;
      }
      auto device_generator = at::globalContext().defaultGenerator(param.device());
      {
        std::lock_guard<std::mutex> lock(device_generator.mutex());
        device_generator.set_current_seed(seed + static_cast<uint64_t>(std::hash<std::string>{}(name)));
      }
      const double fan_in = param.dim() >= 2 ? static_cast<double>(param.numel() / param.size(0)) : 1.0;
      param.normal_(0.0, param.dim() >= 2 ? 1.0 / std::sqrt(fan_in) : 0.02, device_generator);
      continue;
    }
    at::Tensor values;
    if (is_norm_weight) {
      values = at::ones(param.sizes(), at::kFloat);
    } else {
      const double fan_in = param.dim() >= 2 ? static_cast<double>(param.numel() / param.size(0)) : 1.0;
      values = at::normal(0.0, param.dim() >= 2 ? 1.0 / std::sqrt(fan_in) : 0.02, param.sizes(), generator);
    }
    param.copy_(values);
  }
}

}  // namespace internvl::nn
