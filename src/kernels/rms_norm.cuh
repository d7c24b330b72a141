// Device code (torch-free): RMSNorm with an optional fused residual add, one block per row,
// statistics in float32 (as the official InternRMSNorm / LlamaRMSNorm).
#pragma once

#include <cuda_runtime.h>

#include "kernels/kernel_api.h"
#include "kernels/varlen_attention.cuh"

namespace internvl::kernels::device {

constexpr int kNormThreads = 256;

template <typename T>
__global__ void __launch_bounds__(kNormThreads) rms_norm_kernel(RmsNormParams p) {
  const int64_t row = blockIdx.x;
  const T* x = static_cast<const T*>(p.x) + row * p.cols;
  const T* residual = p.residual ? static_cast<const T*>(p.residual) + row * p.cols : nullptr;
  T* residual_out = p.residual ? static_cast<T*>(p.residual_out) + row * p.cols : nullptr;
  const T* weight = static_cast<const T*>(p.weight);
  T* out = static_cast<T*>(p.out) + row * p.cols;
  float sum = 0.f;
  for (int64_t c = threadIdx.x; c < p.cols; c += kNormThreads) {
    float value = to_float(x[c]);
    if (residual) {
      value += to_float(residual[c]);
      // The official models add the residual in the model dtype before normalising.
      const T rounded = from_float<T>(value);
      residual_out[c] = rounded;
      value = to_float(rounded);
    }
    sum += value * value;
  }
  __shared__ float partial[kNormThreads / 32];
  for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = sum;
  __syncthreads();
  float total = 0.f;
  for (int w = 0; w < kNormThreads / 32; ++w) total += partial[w];
  const float inv = rsqrtf(total / static_cast<float>(p.cols) + p.eps);
  for (int64_t c = threadIdx.x; c < p.cols; c += kNormThreads) {
    const float value = residual ? to_float(residual_out[c]) : to_float(x[c]);
    // weight * (x * inv).to(dtype), the official rounding order
    out[c] = from_float<T>(to_float(weight[c]) * to_float(from_float<T>(value * inv)));
  }
}

template <typename T>
int run_rms_norm(const RmsNormParams& p, cudaStream_t stream) {
  if (p.rows == 0) return 0;
  rms_norm_kernel<T><<<static_cast<unsigned>(p.rows), kNormThreads, 0, stream>>>(p);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace internvl::kernels::device
