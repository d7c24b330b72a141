// Device code (torch-free): row norms, one block per row, statistics in float32 (as the official
// InternRMSNorm / LlamaRMSNorm / nn.LayerNorm under autocast-free bf16):
//  - RMSNorm with an optional fused residual add,
//  - LayerNorm with an optional fused residual add,
//  - InternViT's QK-norm: RMSNorm of q and of k over all heads at once, reading both straight
//    from the fused qkv output (strided rows), one launch.
#pragma once

#include <cuda_runtime.h>

#include "kernels/kernel_api.h"
#include "kernels/varlen_attention.cuh"

namespace internvl::kernels::device {

constexpr int kNormThreads = 256;

// Sum over the block; every thread gets the total. `scratch` holds kNormThreads / 32 floats.
__device__ __forceinline__ float block_sum(float value, float* scratch) {
  for (int offset = 16; offset > 0; offset /= 2) value += __shfl_xor_sync(0xffffffffu, value, offset);
  if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = value;
  __syncthreads();
  float total = 0.f;
  for (int w = 0; w < kNormThreads / 32; ++w) total += scratch[w];
  __syncthreads();  // scratch may be reused by the next reduction
  return total;
}

// x (+ residual, rounded to T and stored to residual_out, as the models add in their dtype) of one
// row, read back as float: the value every norm below starts from.
template <typename T>
__device__ __forceinline__ float load_input(const T* x, const T* residual, T* residual_out, int64_t c) {
  if (!residual) return to_float(x[c]);
  const T rounded = from_float<T>(to_float(x[c]) + to_float(residual[c]));
  residual_out[c] = rounded;
  return to_float(rounded);
}

template <typename T>
__device__ __forceinline__ void rms_norm_row(const T* x, const T* residual, T* residual_out, const T* weight, T* out,
                                             int64_t cols, float eps, float* scratch) {
  float sum = 0.f;
  for (int64_t c = threadIdx.x; c < cols; c += kNormThreads) {
    const float value = load_input(x, residual, residual_out, c);
    sum += value * value;
  }
  const float inv = rsqrtf(block_sum(sum, scratch) / static_cast<float>(cols) + eps);
  for (int64_t c = threadIdx.x; c < cols; c += kNormThreads) {
    // Each thread re-reads the elements it wrote itself (same c), so no barrier is needed.
    const float value = residual ? to_float(residual_out[c]) : to_float(x[c]);
    // weight * (x * inv).to(dtype), the official rounding order
    out[c] = from_float<T>(to_float(weight[c]) * to_float(from_float<T>(value * inv)));
  }
}

template <typename T>
__global__ void __launch_bounds__(kNormThreads) rms_norm_kernel(RmsNormParams p) {
  __shared__ float scratch[kNormThreads / 32];
  const int64_t row = blockIdx.x;
  rms_norm_row<T>(static_cast<const T*>(p.x) + row * p.cols,
                  p.residual ? static_cast<const T*>(p.residual) + row * p.cols : nullptr,
                  p.residual ? static_cast<T*>(p.residual_out) + row * p.cols : nullptr, static_cast<const T*>(p.weight),
                  static_cast<T*>(p.out) + row * p.cols, p.cols, p.eps, scratch);
}

template <typename T>
__global__ void __launch_bounds__(kNormThreads) qk_rms_norm_kernel(QkNormParams p) {
  __shared__ float scratch[kNormThreads / 32];
  const int64_t row = blockIdx.x;
  const bool is_k = blockIdx.y == 1;
  const T* x = static_cast<const T*>(is_k ? p.k : p.q) + row * (is_k ? p.k_row_stride : p.q_row_stride);
  T* out = static_cast<T*>(is_k ? p.k_out : p.q_out) + row * p.cols;
  rms_norm_row<T>(x, nullptr, nullptr, static_cast<const T*>(is_k ? p.k_weight : p.q_weight), out, p.cols, p.eps,
                  scratch);
}

// Two passes over the row (mean, then the centred variance) for accuracy on rows with a large mean;
// the row stays in L1/L2 between them.
template <typename T>
__global__ void __launch_bounds__(kNormThreads) layer_norm_kernel(LayerNormParams p) {
  __shared__ float scratch[kNormThreads / 32];
  const int64_t row = blockIdx.x;
  const T* x = static_cast<const T*>(p.x) + row * p.cols;
  const T* residual = p.residual ? static_cast<const T*>(p.residual) + row * p.cols : nullptr;
  T* residual_out = p.residual ? static_cast<T*>(p.residual_out) + row * p.cols : nullptr;
  const T* weight = static_cast<const T*>(p.weight);
  const T* bias = static_cast<const T*>(p.bias);
  T* out = static_cast<T*>(p.out) + row * p.cols;
  const T* input = residual ? residual_out : x;
  float sum = 0.f;
  for (int64_t c = threadIdx.x; c < p.cols; c += kNormThreads) sum += load_input(x, residual, residual_out, c);
  const float mean = block_sum(sum, scratch) / static_cast<float>(p.cols);
  float squares = 0.f;
  for (int64_t c = threadIdx.x; c < p.cols; c += kNormThreads) {
    const float centred = to_float(input[c]) - mean;
    squares += centred * centred;
  }
  const float inv = rsqrtf(block_sum(squares, scratch) / static_cast<float>(p.cols) + p.eps);
  for (int64_t c = threadIdx.x; c < p.cols; c += kNormThreads) {
    const float normed = (to_float(input[c]) - mean) * inv * to_float(weight[c]);
    out[c] = from_float<T>(bias ? normed + to_float(bias[c]) : normed);
  }
}

template <typename T>
int run_rms_norm(const RmsNormParams& p, cudaStream_t stream) {
  if (p.rows == 0) return 0;
  rms_norm_kernel<T><<<static_cast<unsigned>(p.rows), kNormThreads, 0, stream>>>(p);
  return static_cast<int>(cudaGetLastError());
}

template <typename T>
int run_qk_rms_norm(const QkNormParams& p, cudaStream_t stream) {
  if (p.rows == 0) return 0;
  qk_rms_norm_kernel<T><<<dim3(static_cast<unsigned>(p.rows), 2), kNormThreads, 0, stream>>>(p);
  return static_cast<int>(cudaGetLastError());
}

template <typename T>
int run_layer_norm(const LayerNormParams& p, cudaStream_t stream) {
  if (p.rows == 0) return 0;
  layer_norm_kernel<T><<<static_cast<unsigned>(p.rows), kNormThreads, 0, stream>>>(p);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace internvl::kernels::device
