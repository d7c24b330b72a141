// Device code (torch-free): FlashAttention-style forward over variable-length sequences.
// One block = 64 query rows of one (sequence, head); 4 warps own 16 rows each. Per 64-key tile:
// S = Q Kᵀ with WMMA (16x16x16, float accumulate) into shared memory, online softmax in float32
// per row, the running output rescaled in shared memory and O += P V with WMMA. The score matrix
// never reaches global memory.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <cstdint>

#include "kernels/kernel_api.h"

namespace internvl::kernels::device {

constexpr int kBlockM = 64;
constexpr int kBlockN = 64;
constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kRowsPerWarp = kBlockM / kWarps;  // 16: one WMMA row tile

template <typename T>
__device__ __forceinline__ float to_float(T x);
template <>
__device__ __forceinline__ float to_float<__half>(__half x) { return __half2float(x); }
template <>
__device__ __forceinline__ float to_float<__nv_bfloat16>(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ __half from_float<__half>(float x) { return __float2half_rn(x); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

template <int D>
constexpr size_t varlen_attention_smem_bytes() {
  return sizeof(uint16_t) * (kBlockM * D + 2 * kBlockN * D + kBlockM * kBlockN) +
         sizeof(float) * (kBlockM * kBlockN + kBlockM * D + 3 * kBlockM);
}

// Copies rows [row0, row0 + rows) x D of a strided [tokens, heads, D] tensor (head already
// applied) into shared memory [rows][D], zero-filling rows at or past `valid`.
template <typename T, int D>
__device__ __forceinline__ void load_tile(T* dst, const T* src, int64_t row_stride, int row0, int rows, int valid) {
  constexpr int kVec = 8;  // 16 bytes
  constexpr int kChunks = D / kVec;
  for (int i = threadIdx.x; i < rows * kChunks; i += kThreads) {
    const int r = i / kChunks, c = (i % kChunks) * kVec;
    uint4 value = make_uint4(0, 0, 0, 0);
    if (row0 + r < valid) value = *reinterpret_cast<const uint4*>(src + (row0 + r) * row_stride + c);
    *reinterpret_cast<uint4*>(dst + r * D + c) = value;
  }
}

template <typename T, int D>
__global__ void __launch_bounds__(kThreads) varlen_attention_kernel(VarlenAttentionParams p) {
  using namespace nvcuda;
  const int batch = blockIdx.z, head = blockIdx.y, m0 = blockIdx.x * kBlockM;
  const int q_start = p.cu_seqlens_q[batch], q_len = p.cu_seqlens_q[batch + 1] - q_start;
  const int k_start = p.cu_seqlens_k[batch], k_len = p.cu_seqlens_k[batch + 1] - k_start;
  if (m0 >= q_len) return;
  const int kv_head = head / (p.heads / p.kv_heads);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;

  extern __shared__ __align__(128) unsigned char smem[];
  T* sQ = reinterpret_cast<T*>(smem);
  T* sK = sQ + kBlockM * D;
  T* sV = sK + kBlockN * D;
  T* sP = sV + kBlockN * D;
  float* sS = reinterpret_cast<float*>(sP + kBlockM * kBlockN);
  float* sO = sS + kBlockM * kBlockN;
  float* sMax = sO + kBlockM * D;
  float* sSum = sMax + kBlockM;
  float* sAlpha = sSum + kBlockM;

  const T* q = static_cast<const T*>(p.q) + q_start * p.q_row_stride + head * p.q_head_stride;
  const T* k = static_cast<const T*>(p.k) + k_start * p.k_row_stride + kv_head * p.k_head_stride;
  const T* v = static_cast<const T*>(p.v) + k_start * p.v_row_stride + kv_head * p.v_head_stride;
  load_tile<T, D>(sQ, q, p.q_row_stride, m0, kBlockM, q_len);
  for (int i = threadIdx.x; i < kBlockM * D; i += kThreads) sO[i] = 0.f;
  for (int i = threadIdx.x; i < kBlockM; i += kThreads) {
    sMax[i] = -INFINITY;
    sSum[i] = 0.f;
  }

  // Causal (bottom-right): query i sees keys j <= i + k_len - q_len.
  const int shift = k_len - q_len;
  int n_end = k_len;
  if (p.causal) n_end = min(k_len, m0 + kBlockM + shift);
  const float scale_log2 = p.scale * 1.4426950408889634f;
  const int row_base = warp * kRowsPerWarp;

  for (int n0 = 0; n0 < n_end; n0 += kBlockN) {
    __syncthreads();  // previous tile fully consumed (and Q/O initialised on the first pass)
    load_tile<T, D>(sK, k, p.k_row_stride, n0, kBlockN, k_len);
    load_tile<T, D>(sV, v, p.v_row_stride, n0, kBlockN, k_len);
    __syncthreads();

    // S_w = Q_w Kᵀ  (16 x 64 per warp)
    for (int nt = 0; nt < kBlockN / 16; ++nt) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::fill_fragment(acc, 0.f);
      for (int kk = 0; kk < D / 16; ++kk) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> b;
        wmma::load_matrix_sync(a, sQ + row_base * D + kk * 16, D);
        wmma::load_matrix_sync(b, sK + nt * 16 * D + kk * 16, D);
        wmma::mma_sync(acc, a, b, acc);
      }
      wmma::store_matrix_sync(sS + row_base * kBlockN + nt * 16, acc, kBlockN, wmma::mem_row_major);
    }
    __syncwarp();

    // Online softmax, one row at a time; each lane owns columns lane and lane + 32.
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const int row = row_base + r, i = m0 + row;
      float s[2];
      float local_max = -INFINITY;
      for (int c = 0; c < 2; ++c) {
        const int col = lane + 32 * c, j = n0 + col;
        const bool valid = i < q_len && j < k_len && (!p.causal || j <= i + shift);
        s[c] = valid ? sS[row * kBlockN + col] * scale_log2 : -INFINITY;
        local_max = fmaxf(local_max, s[c]);
      }
      for (int offset = 16; offset > 0; offset /= 2) local_max = fmaxf(local_max, __shfl_xor_sync(0xffffffffu, local_max, offset));
      const float old_max = sMax[row];
      const float new_max = fmaxf(old_max, local_max);
      float local_sum = 0.f;
      for (int c = 0; c < 2; ++c) {
        const float prob = new_max == -INFINITY ? 0.f : exp2f(s[c] - new_max);
        sP[row * kBlockN + lane + 32 * c] = from_float<T>(prob);
        local_sum += prob;
      }
      for (int offset = 16; offset > 0; offset /= 2) local_sum += __shfl_xor_sync(0xffffffffu, local_sum, offset);
      const float alpha = (old_max == -INFINITY) ? 0.f : exp2f(old_max - new_max);
      __syncwarp();
      if (lane == 0) {
        sMax[row] = new_max;
        sSum[row] = sSum[row] * alpha + local_sum;
        sAlpha[row] = alpha;
      }
    }
    __syncwarp();
    for (int idx = lane; idx < kRowsPerWarp * D; idx += 32) {
      const int row = row_base + idx / D;
      sO[row * D + idx % D] *= sAlpha[row];
    }
    __syncwarp();

    // O_w += P_w V  (16 x D per warp), accumulators round-tripped through shared memory.
    for (int dt = 0; dt < D / 16; ++dt) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::load_matrix_sync(acc, sO + row_base * D + dt * 16, D, wmma::mem_row_major);
      for (int kk = 0; kk < kBlockN / 16; ++kk) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> b;
        wmma::load_matrix_sync(a, sP + row_base * kBlockN + kk * 16, kBlockN);
        wmma::load_matrix_sync(b, sV + kk * 16 * D + dt * 16, D);
        wmma::mma_sync(acc, a, b, acc);
      }
      wmma::store_matrix_sync(sO + row_base * D + dt * 16, acc, D, wmma::mem_row_major);
    }
    __syncwarp();
  }
  __syncthreads();

  T* o = static_cast<T*>(p.o) + q_start * p.o_row_stride + head * p.o_head_stride;
  for (int idx = threadIdx.x; idx < kBlockM * D; idx += kThreads) {
    const int row = idx / D, d = idx % D, i = m0 + row;
    if (i >= q_len) continue;
    const float sum = sSum[row];
    o[i * p.o_row_stride + d] = from_float<T>(sum > 0.f ? sO[idx] / sum : 0.f);
  }
}

template <typename T, int D>
int run_varlen_attention(const VarlenAttentionParams& p, cudaStream_t stream) {
  constexpr size_t smem = varlen_attention_smem_bytes<D>();
  cudaError_t err = cudaFuncSetAttribute(varlen_attention_kernel<T, D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(smem));
  if (err != cudaSuccess) return static_cast<int>(err);
  const dim3 grid((p.max_seqlen_q + kBlockM - 1) / kBlockM, p.heads, p.batch);
  varlen_attention_kernel<T, D><<<grid, kThreads, smem, stream>>>(p);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace internvl::kernels::device
