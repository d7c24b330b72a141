// CUDA kernels against the ATen path in float32 on fresh random inputs of odd sizes (not tile
// multiples), every output and workspace poisoned with NaN before the kernel writes it
// (kernels::set_poison_outputs), every launch checked by the entries and the device synchronised
// and checked after each test. Skipped without a CUDA device or a CUDA build.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <cmath>

#include "internvl/error.h"
#include "kernels/cuda_ops.h"

using namespace internvl;

namespace {

class CudaKernels : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!kernels::cuda_kernels_built()) GTEST_SKIP() << "built without CUDA kernels";
    if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
    kernels::set_cuda_kernels_enabled(true);
    kernels::set_poison_outputs(true);
  }
  void TearDown() override {
    kernels::set_cuda_kernels_enabled(false);
    kernels::set_poison_outputs(false);
    if (at::hasCUDA()) torch::cuda::synchronize();  // throws on an asynchronous kernel error
  }
};

// float32 reference: softmax(q kᵀ * scale [+ bottom-right causal mask]) v with GQA.
at::Tensor reference_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, bool causal, double scale) {
  const auto qf = q.to(at::kFloat), kf = k.to(at::kFloat).repeat_interleave(q.size(1) / k.size(1), 1),
             vf = v.to(at::kFloat).repeat_interleave(q.size(1) / k.size(1), 1);
  auto scores = at::matmul(qf, kf.transpose(-1, -2)) * scale;
  if (causal) {
    const int64_t lq = q.size(2), lk = k.size(2);
    const auto allowed = at::ones({lq, lk}, q.options().dtype(at::kBool)).tril(lk - lq);
    scores = scores.masked_fill(allowed.logical_not(), -INFINITY);
  }
  return at::matmul(scores.softmax(-1), vf);
}

double rel_error(const at::Tensor& actual, const at::Tensor& expected) {
  const auto a = actual.to(at::kDouble), e = expected.to(at::kDouble);
  return ((a - e).norm() / e.norm()).item<double>();
}

TEST_F(CudaKernels, PrefillAndCrossAttentionMatchATen) {
  at::manual_seed(1234);
  struct Case { int64_t batch, heads, kv_heads, lq, lk, d; bool causal; };
  const Case cases[] = {{1, 4, 4, 257, 257, 64, false}, {2, 8, 2, 77, 77, 128, true},  {3, 6, 3, 33, 129, 64, false},
                        {1, 5, 5, 100, 161, 128, true}, {2, 4, 1, 1025, 1025, 64, true}, {1, 2, 2, 8, 257, 128, false}};
  for (const auto dtype : {at::kBFloat16, at::kHalf}) {
    for (const auto& c : cases) {
      SCOPED_TRACE(::testing::Message() << "dtype " << dtype << " B" << c.batch << " H" << c.heads << "/" << c.kv_heads
                                        << " Lq" << c.lq << " Lk" << c.lk << " D" << c.d << " causal " << c.causal);
      const auto options = at::TensorOptions().device(at::kCUDA).dtype(dtype);
      const auto q = at::randn({c.batch, c.heads, c.lq, c.d}, options);
      const auto k = at::randn({c.batch, c.kv_heads, c.lk, c.d}, options);
      const auto v = at::randn({c.batch, c.kv_heads, c.lk, c.d}, options);
      const double scale = 1.0 / std::sqrt(static_cast<double>(c.d));
      const auto out = kernels::attention(q, k, v, c.causal, scale);
      ASSERT_TRUE(at::isfinite(out).all().item<bool>());
      const auto expected = reference_attention(q, k, v, c.causal, scale);
      EXPECT_LT(rel_error(out, expected), 1e-2);
    }
  }
}

TEST_F(CudaKernels, VarlenBatchesSequencesOfDifferentLengths) {
  at::manual_seed(99);
  const std::vector<int32_t> lengths = {1, 64, 65, 300, 17};
  const int64_t heads = 4, kv_heads = 2, d = 64;
  std::vector<int32_t> cu = {0};
  for (const auto n : lengths) cu.push_back(cu.back() + n);
  const auto options = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  const auto q = at::randn({cu.back(), heads, d}, options);
  const auto k = at::randn({cu.back(), kv_heads, d}, options);
  const auto v = at::randn({cu.back(), kv_heads, d}, options);
  const auto cu_t = at::tensor(cu, at::kInt).to(at::kCUDA);
  for (const bool causal : {false, true}) {
    const auto out = kernels::varlen_attention(q, k, v, cu_t, cu_t, 300, causal, 0.125);
    for (size_t i = 0; i < lengths.size(); ++i) {
      auto slice = [&](const at::Tensor& t) { return t.slice(0, cu[i], cu[i + 1]).transpose(0, 1).unsqueeze(0); };
      const auto expected = reference_attention(slice(q), slice(k), slice(v), causal, 0.125);
      EXPECT_LT(rel_error(slice(out), expected), 1e-2) << "sequence " << i << " causal " << causal;
    }
  }
}

TEST_F(CudaKernels, DecodeOverStridedCacheMatchesATen) {
  at::manual_seed(7);
  for (const int64_t d : {64, 128}) {
    for (const int64_t context : {1, 5, 300, 4099}) {
      const int64_t batch = 3, heads = 8, kv_heads = 2, capacity = context + 13;
      const auto options = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
      const auto cache_k = at::randn({batch, kv_heads, capacity, d}, options);
      const auto cache_v = at::randn({batch, kv_heads, capacity, d}, options);
      const auto q = at::randn({batch, heads, 1, d}, options);
      const auto k = cache_k.slice(2, 0, context), v = cache_v.slice(2, 0, context);
      const auto out = kernels::attention(q, k, v, false, 0.1);
      EXPECT_LT(rel_error(out, reference_attention(q, k, v, false, 0.1)), 1e-2) << "d " << d << " context " << context;
      // Per-sequence lengths.
      const auto lengths = at::tensor(std::vector<int32_t>{1, static_cast<int32_t>(context), static_cast<int32_t>((context + 1) / 2)}, at::kInt).to(at::kCUDA);
      auto per_sequence = kernels::decode_attention(q.select(2, 0), cache_k, cache_v, lengths, 0.1);
      for (int64_t b = 0; b < batch; ++b) {
        const int64_t n = std::vector<int64_t>{1, context, (context + 1) / 2}[b];
        const auto expected = reference_attention(q.slice(0, b, b + 1), cache_k.slice(0, b, b + 1).slice(2, 0, n),
                                                  cache_v.slice(0, b, b + 1).slice(2, 0, n), false, 0.1);
        EXPECT_LT(rel_error(per_sequence.slice(0, b, b + 1).unsqueeze(2), expected), 1e-2) << "batch row " << b;
      }
    }
  }
}

TEST_F(CudaKernels, RmsNormWithAndWithoutResidual) {
  at::manual_seed(5);
  for (const auto dtype : {at::kBFloat16, at::kHalf}) {
    const auto options = at::TensorOptions().device(at::kCUDA).dtype(dtype);
    const auto x = at::randn({37, 1000}, options), residual = at::randn({37, 1000}, options);
    const auto weight = (1 + 0.1 * at::randn({1000}, options.dtype(at::kFloat))).to(dtype);
    auto reference = [&](const at::Tensor& h) {
      const auto f = h.to(at::kFloat);
      return weight * (f * at::rsqrt(f.pow(2).mean(-1, true) + 1e-6)).to(dtype);
    };
    EXPECT_LT(rel_error(kernels::rms_norm(x, weight, 1e-6), reference(x)), 1e-2);
    const auto [normed, sum] = kernels::add_rms_norm(x, residual, weight, 1e-6);
    EXPECT_TRUE(at::equal(sum, x + residual));
    EXPECT_LT(rel_error(normed, reference(x + residual)), 1e-2);
  }
}

TEST_F(CudaKernels, DecodeAtBatchOneToThirtyTwoAndContextsTo32k) {
  at::manual_seed(17);
  struct Case { int64_t batch, heads, kv_heads, capacity, d; };
  const Case cases[] = {{1, 32, 8, 32768 + 5, 128}, {32, 16, 2, 1037, 64}, {17, 28, 4, 9001, 128}, {5, 8, 8, 333, 64}};
  for (const auto& c : cases) {
    SCOPED_TRACE(::testing::Message() << "B" << c.batch << " H" << c.heads << "/" << c.kv_heads << " capacity "
                                      << c.capacity << " D" << c.d);
    const auto options = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
    const auto cache_k = at::randn({c.batch, c.kv_heads, c.capacity, c.d}, options);
    const auto cache_v = at::randn({c.batch, c.kv_heads, c.capacity, c.d}, options);
    const auto q = at::randn({c.batch, c.heads, c.d}, options);
    // Ragged lengths in 1..capacity; the first row uses the whole cache.
    auto lengths = at::randint(1, c.capacity + 1, {c.batch}, at::kInt);
    lengths[0] = static_cast<int>(c.capacity);
    const auto lengths_cpu = lengths.clone();
    const auto lengths_gpu = lengths.to(at::kCUDA);
    const double scale = 1.0 / std::sqrt(static_cast<double>(c.d));
    const auto out = kernels::decode_attention(q, cache_k, cache_v, lengths_gpu, scale);
    // The graph form: the capacity as the bound, lengths never read on the host.
    const auto bounded = kernels::decode_attention(q, cache_k, cache_v, lengths_gpu, scale, c.capacity);
    ASSERT_TRUE(at::isfinite(out).all().item<bool>());
    ASSERT_TRUE(at::isfinite(bounded).all().item<bool>());
    for (int64_t b = 0; b < c.batch; ++b) {
      const int64_t n = lengths_cpu[b].item<int>();
      const auto expected = reference_attention(q.slice(0, b, b + 1).unsqueeze(2), cache_k.slice(0, b, b + 1).slice(2, 0, n),
                                                cache_v.slice(0, b, b + 1).slice(2, 0, n), false, scale);
      EXPECT_LT(rel_error(out.slice(0, b, b + 1).unsqueeze(2), expected), 1e-2) << "row " << b << " length " << n;
      EXPECT_LT(rel_error(bounded.slice(0, b, b + 1).unsqueeze(2), expected), 1e-2) << "row " << b << " length " << n;
    }
  }
  const auto options = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  const auto cache = at::randn({1, 2, 10, 64}, options);
  const auto lengths = at::full({1}, 5, options.dtype(at::kInt));
  EXPECT_THROW(kernels::decode_attention(at::randn({1, 2, 64}, options), cache, cache, lengths, 0.1, 11), InvalidArgument);
  EXPECT_THROW(kernels::decode_attention(at::randn({1, 2, 64}, options), cache, cache, at::full({1}, 11, options.dtype(at::kInt)), 0.1),
               InvalidArgument);
}

TEST_F(CudaKernels, LayerNormWithAndWithoutResidualAndBias) {
  at::manual_seed(6);
  for (const auto dtype : {at::kBFloat16, at::kHalf}) {
    const auto options = at::TensorOptions().device(at::kCUDA).dtype(dtype);
    for (const auto& shape : {std::vector<int64_t>{37, 1000}, std::vector<int64_t>{3, 5, 1025}}) {
      const int64_t cols = shape.back();
      // A large mean tests the centred variance.
      const auto x = at::randn(shape, options) + 3, residual = at::randn(shape, options);
      const auto weight = (1 + 0.1 * at::randn({cols}, options.dtype(at::kFloat))).to(dtype);
      const auto bias = (0.1 * at::randn({cols}, options.dtype(at::kFloat))).to(dtype);
      for (const bool with_bias : {true, false}) {
        SCOPED_TRACE(::testing::Message() << "dtype " << dtype << " cols " << cols << " bias " << with_bias);
        const auto b = with_bias ? bias : at::Tensor();
        auto reference = [&](const at::Tensor& h) {
          const auto f = h.to(at::kFloat);
          const auto mean = f.mean(-1, true);
          const auto var = (f - mean).pow(2).mean(-1, true);
          auto y = (f - mean) * at::rsqrt(var + 1e-6) * weight.to(at::kFloat);
          if (with_bias) y = y + bias.to(at::kFloat);
          return y;
        };
        const auto out = kernels::layer_norm(x, weight, b, 1e-6);
        ASSERT_TRUE(at::isfinite(out).all().item<bool>());
        EXPECT_LT(rel_error(out, reference(x)), 1e-2);
        const auto [normed, sum] = kernels::add_layer_norm(x, residual, weight, b, 1e-6);
        EXPECT_TRUE(at::equal(sum, residual + x));
        EXPECT_LT(rel_error(normed, reference(residual + x)), 1e-2);
      }
    }
  }
  const auto options = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  EXPECT_THROW(kernels::layer_norm(at::randn({2, 8}, options), at::ones({7}, options), {}, 1e-6), InvalidArgument);
  EXPECT_THROW(kernels::layer_norm(at::randn({2, 8}, options), at::ones({8}, options), at::ones({8}, options.dtype(at::kFloat)), 1e-6),
               InvalidArgument);
}

TEST_F(CudaKernels, QkNormReadsTheFusedProjectionInOneLaunch) {
  at::manual_seed(8);
  for (const auto dtype : {at::kBFloat16, at::kHalf}) {
    SCOPED_TRACE(::testing::Message() << "dtype " << dtype);
    const auto options = at::TensorOptions().device(at::kCUDA).dtype(dtype);
    const int64_t batch = 3, tokens = 257, width = 25 * 8 + 3;  // odd width
    const auto fused = at::randn({batch, tokens, 3 * width}, options);
    const auto q = fused.slice(-1, 0, width), k = fused.slice(-1, width, 2 * width);
    const auto qw = (1 + 0.1 * at::randn({width}, options.dtype(at::kFloat))).to(dtype);
    const auto kw = (1 + 0.1 * at::randn({width}, options.dtype(at::kFloat))).to(dtype);
    const auto [q_out, k_out] = kernels::qk_rms_norm(q, k, qw, kw, 1e-6);
    ASSERT_EQ(q_out.sizes(), q.sizes());
    auto reference = [&](const at::Tensor& h, const at::Tensor& w) {
      const auto f = h.to(at::kFloat);
      return w.to(at::kFloat) * (f * at::rsqrt(f.pow(2).mean(-1, true) + 1e-6));
    };
    EXPECT_LT(rel_error(q_out, reference(q, qw)), 1e-2);
    EXPECT_LT(rel_error(k_out, reference(k, kw)), 1e-2);
    // The same per-row arithmetic as the plain RMSNorm kernel on contiguous copies.
    EXPECT_TRUE(at::equal(q_out, kernels::rms_norm(q.contiguous(), qw, 1e-6)));
    EXPECT_TRUE(at::equal(k_out, kernels::rms_norm(k.contiguous(), kw, 1e-6)));
  }
  const auto options = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  const auto x = at::randn({4, 16}, options);
  EXPECT_THROW(kernels::qk_rms_norm(x, at::randn({4, 15}, options), at::ones({16}, options), at::ones({16}, options), 1e-6),
               InvalidArgument);
  EXPECT_THROW(kernels::qk_rms_norm(x, x, at::ones({16}, options), at::ones({16}, options.dtype(at::kHalf)), 1e-6),
               InvalidArgument);
}

TEST_F(CudaKernels, RejectsUnsupportedInputs) {
  const auto options = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  const auto q = at::randn({1, 2, 8, 96}, options);  // head_dim 96
  EXPECT_THROW(kernels::attention(q, q, q, false, 0.1), InvalidArgument);
  const auto f32 = at::randn({1, 2, 8, 64}, options.dtype(at::kFloat));
  EXPECT_THROW(kernels::attention(f32, f32, f32, false, 0.1), InvalidArgument);
  EXPECT_FALSE(kernels::attention_supported(f32, f32, f32, false));
}

TEST(CudaKernelSwitch, OffByDefaultAndHonoursTheSwitch) {
  if (std::getenv("INTERNVL_CUDA_KERNELS") == nullptr) EXPECT_FALSE(kernels::cuda_kernels_enabled());
  kernels::set_cuda_kernels_enabled(true);
  EXPECT_EQ(kernels::cuda_kernels_enabled(), kernels::cuda_kernels_built());
  kernels::set_cuda_kernels_enabled(false);
  EXPECT_FALSE(kernels::cuda_kernels_enabled());
  if (!kernels::cuda_kernels_built()) {
    EXPECT_THROW(kernels::rms_norm(at::ones({2, 2}), at::ones({2}), 1e-6), UnsupportedError);
    EXPECT_THROW(kernels::layer_norm(at::ones({2, 2}), at::ones({2}), {}, 1e-6), UnsupportedError);
    EXPECT_THROW(kernels::qk_rms_norm(at::ones({2, 2}), at::ones({2, 2}), at::ones({2}), at::ones({2}), 1e-6),
                 UnsupportedError);
  }
  EXPECT_FALSE(kernels::norm_supported(at::ones({2, 2}, at::kBFloat16), at::ones({2}, at::kBFloat16)));
  // CPU tensors never take the kernel path.
  kernels::set_cuda_kernels_enabled(true);
  const auto cpu = at::randn({1, 2, 4, 64}, at::kBFloat16);
  EXPECT_FALSE(kernels::attention_supported(cpu, cpu, cpu, false));
  kernels::set_cuda_kernels_enabled(false);
}

}  // namespace
