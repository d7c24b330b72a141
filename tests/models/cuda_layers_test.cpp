// Model layers on CUDA with the kernels on against the same layers on the ATen path (the A/B
// switch), bf16, random weights at odd sizes; skipped without a CUDA device. The CPU part checks
// that the fused residual + norm entry equals the unfused arithmetic exactly.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include "kernels/cuda_ops.h"
#include "models/intern_vit.h"
#include "nn/layers.h"

using namespace internvl;

namespace {

double rel_error(const at::Tensor& actual, const at::Tensor& expected) {
  const auto a = actual.to(at::kDouble).cpu(), e = expected.to(at::kDouble).cpu();
  return ((a - e).norm() / e.norm()).item<double>();
}

TEST(NormForwardAdd, EqualsTheUnfusedArithmeticOnCpu) {
  for (const auto kind : {nn::NormKind::kRMSNorm, nn::NormKind::kLayerNorm}) {
    for (const auto dtype : {at::kFloat, at::kBFloat16}) {
      nn::Norm norm(kind, 37, 1e-6, nn::ParamInit{dtype, at::kCPU});
      nn::init_random(*norm, 3);
      const auto x = at::randn({2, 5, 37}).to(dtype), residual = at::randn({2, 5, 37}).to(dtype);
      const auto [normed, sum] = norm->forward_add(x, residual);
      const auto expected_sum = residual + x;
      EXPECT_TRUE(at::equal(sum, expected_sum));
      EXPECT_TRUE(at::equal(normed, norm->forward(expected_sum)));
    }
  }
}

io::VisionConfig tiny_vision(bool six_b) {
  io::VisionConfig c;
  c.hidden_size = six_b ? 5 * 64 : 3 * 128;  // head dims the kernels take: 64 and 128
  c.num_attention_heads = six_b ? 5 : 3;
  c.intermediate_size = 4 * c.hidden_size + 7;
  c.num_hidden_layers = 2;
  c.norm_type = six_b ? "rms_norm" : "layer_norm";
  c.qk_normalization = six_b;
  c.qkv_bias = !six_b;
  return c;
}

TEST(CudaLayers, VisionLayerWithKernelsMatchesTheAtenPath) {
  if (!kernels::cuda_kernels_built()) GTEST_SKIP() << "built without CUDA kernels";
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  at::NoGradGuard no_grad;
  for (const bool six_b : {true, false}) {
    SCOPED_TRACE(six_b ? "6B-like (RMSNorm, QK-norm)" : "300M-like (LayerNorm)");
    const auto config = tiny_vision(six_b);
    models::InternVisionEncoderLayer layer(config, nn::ParamInit{at::kBFloat16, at::kCUDA});
    nn::init_random(*layer, 7);
    at::manual_seed(2);
    const auto x = at::randn({3, 257, config.hidden_size}, at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16));
    kernels::set_cuda_kernels_enabled(false);
    const auto expected = layer->forward(x);
    kernels::set_cuda_kernels_enabled(true);
    kernels::set_poison_outputs(true);
    const auto actual = layer->forward(x);
    kernels::set_poison_outputs(false);
    kernels::set_cuda_kernels_enabled(false);
    torch::cuda::synchronize();
    ASSERT_TRUE(at::isfinite(actual).all().item<bool>());
    EXPECT_LT(rel_error(actual, expected), 2e-2);
  }
}

}  // namespace
