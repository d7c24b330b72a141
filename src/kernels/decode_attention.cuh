// Device code (torch-free): single-token decode attention over a strided KV cache, split-KV
// (flash-decoding). Grid (splits, kv_heads, batch): each block scans one key chunk for every
// query head of its group, keeping a float32 online softmax per warp; partial results (output,
// max, sum) go to a workspace and a second kernel merges the splits.
#pragma once

#include <cuda_runtime.h>

#include "kernels/kernel_api.h"
#include "kernels/varlen_attention.cuh"

namespace internvl::kernels::device {

constexpr int kDecodeWarps = 4;
constexpr int kDecodeThreads = kDecodeWarps * 32;
constexpr int kMaxGroup = 8;  // query heads per kv head handled by one block

// Workspace layout per (batch, head, split): D output floats, then max, then sum.
__host__ __device__ constexpr int64_t decode_record_floats(int head_dim) { return head_dim + 2; }

template <typename T, int D>
__global__ void __launch_bounds__(kDecodeThreads) decode_split_kernel(DecodeAttentionParams p, int chunk) {
  constexpr int kPerLane = D / 32;
  const int split = blockIdx.x, kv_head = blockIdx.y, batch = blockIdx.z;
  const int group = p.heads / p.kv_heads;
  const int length = p.lengths[batch];
  const int begin = split * chunk, end = min(length, begin + chunk);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;

  float q[kMaxGroup][kPerLane];
  float acc[kMaxGroup][kPerLane];
  float m[kMaxGroup], l[kMaxGroup];
  const T* qb = static_cast<const T*>(p.q) + batch * p.q_batch_stride;
  for (int g = 0; g < kMaxGroup; ++g) {
    m[g] = -INFINITY;
    l[g] = 0.f;
    for (int e = 0; e < kPerLane; ++e) {
      acc[g][e] = 0.f;
      q[g][e] = g < group ? to_float(qb[(kv_head * group + g) * p.q_head_stride + lane * kPerLane + e]) * p.scale : 0.f;
    }
  }
  const T* kb = static_cast<const T*>(p.k) + batch * p.k_batch_stride + kv_head * p.k_head_stride;
  const T* vb = static_cast<const T*>(p.v) + batch * p.v_batch_stride + kv_head * p.v_head_stride;
  for (int j = begin + warp; j < end; j += kDecodeWarps) {
    float kv[kPerLane], vv[kPerLane];
    for (int e = 0; e < kPerLane; ++e) {
      kv[e] = to_float(kb[j * p.k_token_stride + lane * kPerLane + e]);
      vv[e] = to_float(vb[j * p.v_token_stride + lane * kPerLane + e]);
    }
    for (int g = 0; g < kMaxGroup; ++g) {
      if (g >= group) break;
      float dot = 0.f;
      for (int e = 0; e < kPerLane; ++e) dot += q[g][e] * kv[e];
      for (int offset = 16; offset > 0; offset /= 2) dot += __shfl_xor_sync(0xffffffffu, dot, offset);
      const float new_max = fmaxf(m[g], dot);
      const float alpha = __expf(m[g] - new_max);  // exp(-inf) = 0 on the first key
      const float prob = __expf(dot - new_max);
      l[g] = l[g] * alpha + prob;
      for (int e = 0; e < kPerLane; ++e) acc[g][e] = acc[g][e] * alpha + prob * vv[e];
      m[g] = new_max;
    }
  }

  // Merge the warps of this block.
  __shared__ float s_acc[kDecodeWarps][kMaxGroup][D];
  __shared__ float s_m[kDecodeWarps][kMaxGroup], s_l[kDecodeWarps][kMaxGroup];
  for (int g = 0; g < group && g < kMaxGroup; ++g) {
    for (int e = 0; e < kPerLane; ++e) s_acc[warp][g][lane * kPerLane + e] = acc[g][e];
    if (lane == 0) {
      s_m[warp][g] = m[g];
      s_l[warp][g] = l[g];
    }
  }
  __syncthreads();
  const int records = p.splits;
  for (int idx = threadIdx.x; idx < group * D; idx += kDecodeThreads) {
    const int g = idx / D, d = idx % D;
    float max_all = -INFINITY;
    for (int w = 0; w < kDecodeWarps; ++w) max_all = fmaxf(max_all, s_m[w][g]);
    float out = 0.f, sum = 0.f;
    for (int w = 0; w < kDecodeWarps; ++w) {
      const float f = s_m[w][g] == -INFINITY ? 0.f : __expf(s_m[w][g] - max_all);
      out += s_acc[w][g][d] * f;
      sum += s_l[w][g] * f;
    }
    const int head = kv_head * group + g;
    float* record = p.workspace + ((static_cast<int64_t>(batch) * p.heads + head) * records + split) * decode_record_floats(D);
    record[d] = out;
    if (d == 0) {
      record[D] = max_all;
      record[D + 1] = sum;
    }
  }
}

template <typename T, int D>
__global__ void decode_combine_kernel(DecodeAttentionParams p) {
  const int head = blockIdx.x, batch = blockIdx.y;
  const float* records = p.workspace + (static_cast<int64_t>(batch) * p.heads + head) * p.splits * decode_record_floats(D);
  float max_all = -INFINITY;
  for (int s = 0; s < p.splits; ++s) max_all = fmaxf(max_all, records[s * decode_record_floats(D) + D]);
  T* o = static_cast<T*>(p.o) + batch * p.o_batch_stride + head * p.o_head_stride;
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float out = 0.f, sum = 0.f;
    for (int s = 0; s < p.splits; ++s) {
      const float* r = records + s * decode_record_floats(D);
      if (r[D] == -INFINITY) continue;  // an empty split
      const float f = __expf(r[D] - max_all);
      out += r[d] * f;
      sum += r[D + 1] * f;
    }
    o[d] = from_float<T>(sum > 0.f ? out / sum : 0.f);
  }
}

template <typename T, int D>
int run_decode_attention(DecodeAttentionParams p, cudaStream_t stream) {
  if (p.splits <= 0) p.splits = decode_splits(p.max_length);
  const int chunk = (p.max_length + p.splits - 1) / p.splits;
  decode_split_kernel<T, D><<<dim3(p.splits, p.kv_heads, p.batch), kDecodeThreads, 0, stream>>>(p, chunk > 0 ? chunk : 1);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return static_cast<int>(err);
  decode_combine_kernel<T, D><<<dim3(p.heads, p.batch), D, 0, stream>>>(p);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace internvl::kernels::device
