// GPU attention timing: our kernels vs ATen's scaled_dot_product_attention (the backend it picks)
// on the same inputs, plus split-KV decode. One JSON line per case; CUDA only.
//   attention_bench [--iters N]
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "kernels/cuda_ops.h"

namespace {

double median_ms(const std::function<void()>& fn, int iters) {
  for (int i = 0; i < 3; ++i) fn();  // warm-up
  std::vector<float> times;
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  for (int i = 0; i < iters; ++i) {
    cudaEventRecord(start, at::cuda::getCurrentCUDAStream());
    fn();
    cudaEventRecord(stop, at::cuda::getCurrentCUDAStream());
    cudaEventSynchronize(stop);
    float ms = 0;
    cudaEventElapsedTime(&ms, start, stop);
    times.push_back(ms);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int iters = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::string(argv[i]) == "--iters") iters = std::stoi(argv[i + 1]);
  }
  if (!at::hasCUDA()) {
    std::printf("no CUDA device\n");
    return 1;
  }
  internvl::kernels::set_cuda_kernels_enabled(true);
  at::manual_seed(0);
  const auto options = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  // One JSON line per case; bench/gpu/sdpa_peer.py times torch's SDPA backends on the same cases
  // and bench/gpu/report.py joins them by "case".
  struct Prefill { int64_t batch, heads, tokens, d; bool causal; };
  for (const auto& c : {Prefill{32, 25, 257, 128, false}, Prefill{8, 25, 1025, 128, false}, Prefill{32, 16, 257, 64, false},
                        Prefill{8, 16, 1025, 64, false}, Prefill{4, 32, 2048, 128, true}}) {
    const auto q = at::randn({c.batch, c.heads, c.tokens, c.d}, options);
    const auto k = at::randn({c.batch, c.heads, c.tokens, c.d}, options);
    const auto v = at::randn({c.batch, c.heads, c.tokens, c.d}, options);
    const double scale = 1.0 / std::sqrt(static_cast<double>(c.d));
    const auto ours = internvl::kernels::attention(q, k, v, c.causal, scale);
    const auto ref = at::scaled_dot_product_attention(q, k, v, {}, 0.0, c.causal, scale);
    const double err = ((ours.to(at::kFloat) - ref.to(at::kFloat)).norm() / ref.to(at::kFloat).norm()).item<double>();
    const double ours_ms = median_ms([&] { internvl::kernels::attention(q, k, v, c.causal, scale); }, iters);
    const double sdpa_ms = median_ms([&] { at::scaled_dot_product_attention(q, k, v, {}, 0.0, c.causal, scale); }, iters);
    const double flops = 4.0 * c.batch * c.heads * c.tokens * c.tokens * c.d * (c.causal ? 0.5 : 1.0);
    std::printf("{\"case\": \"prefill B%lld H%lld L%lld d%lld%s\", \"kind\": \"prefill\", \"ours_ms\": %.5f, "
                "\"aten_sdpa_ms\": %.5f, \"flops\": %.6g, \"rel_err\": %.3g}\n",
                (long long)c.batch, (long long)c.heads, (long long)c.tokens, (long long)c.d, c.causal ? " causal" : "",
                ours_ms, sdpa_ms, flops, err);
    std::fflush(stdout);
  }
  struct Decode { int64_t batch, heads, kv_heads, context, d; };
  for (const auto& c : {Decode{1, 32, 8, 4096, 128}, Decode{1, 32, 8, 16384, 128}, Decode{16, 32, 8, 4096, 128},
                        Decode{32, 16, 8, 16384, 64}}) {
    const auto q = at::randn({c.batch, c.heads, 1, c.d}, options);
    const auto k = at::randn({c.batch, c.kv_heads, c.context, c.d}, options);
    const auto v = at::randn({c.batch, c.kv_heads, c.context, c.d}, options);
    const double scale = 1.0 / std::sqrt(static_cast<double>(c.d));
    const auto ke = k.repeat_interleave(c.heads / c.kv_heads, 1), ve = v.repeat_interleave(c.heads / c.kv_heads, 1);
    const auto ours = internvl::kernels::attention(q, k, v, false, scale);
    const auto ref = at::scaled_dot_product_attention(q, ke, ve, {}, 0.0, false, scale);
    const double err = ((ours.to(at::kFloat) - ref.to(at::kFloat)).norm() / ref.to(at::kFloat).norm()).item<double>();
    const double ours_ms = median_ms([&] { internvl::kernels::attention(q, k, v, false, scale); }, iters);
    // The peer gets GQA as torch users write it (enable_gqa).
    const double sdpa_ms = median_ms([&] { at::scaled_dot_product_attention(q, k, v, {}, 0.0, false, scale, true); }, iters);
    const double bytes = 2.0 * c.batch * c.kv_heads * c.context * c.d * 2;
    std::printf("{\"case\": \"decode B%lld H%lld/%lld KV%lld d%lld\", \"kind\": \"decode\", \"ours_ms\": %.5f, "
                "\"aten_sdpa_ms\": %.5f, \"bytes\": %.6g, \"rel_err\": %.3g}\n",
                (long long)c.batch, (long long)c.heads, (long long)c.kv_heads, (long long)c.context, (long long)c.d,
                ours_ms, sdpa_ms, bytes, err);
    std::fflush(stdout);
  }
  return 0;
}
