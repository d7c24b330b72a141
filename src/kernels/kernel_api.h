// Torch-free launchers of the CUDA kernels (raw device pointers, explicit strides, a stream).
// The ATen-facing entries with shape checks are in cuda_ops.h.
#pragma once

#include <cstdint>

namespace internvl::kernels {

enum class ElementType { kFloat16, kBFloat16 };

// Variable-length prefill / encoder attention (FlashAttention-style: tiled, online softmax,
// tensor-core MMA, no score matrix in global memory).
// q [total_q, heads, head_dim], k/v [total_k, kv_heads, head_dim], o like q; row strides in
// elements. cu_seqlens_* [batch + 1] int32 (device). Causal masks are bottom-right aligned
// (query i of Lq sees keys j <= i + Lk - Lq). head_dim 64 or 128.
struct VarlenAttentionParams {
  const void* q;
  const void* k;
  const void* v;
  void* o;
  const int32_t* cu_seqlens_q;
  const int32_t* cu_seqlens_k;
  int64_t q_row_stride, k_row_stride, v_row_stride, o_row_stride;  // between tokens
  int64_t q_head_stride, k_head_stride, v_head_stride, o_head_stride;
  int batch, heads, kv_heads, head_dim;
  int max_seqlen_q;
  float scale;
  bool causal;
  ElementType type;
};

// Returns 0 or a cudaError_t value.
int launch_varlen_attention(const VarlenAttentionParams& params, void* stream);

// Decode attention over a KV cache, split-KV (flash-decoding) with grouped-query heads.
// q [batch, heads, head_dim]; k/v cache [batch, kv_heads, capacity, head_dim] (strided);
// lengths [batch] int32 (device): keys 0..length-1 are attended. o like q.
struct DecodeAttentionParams {
  const void* q;
  const void* k;
  const void* v;
  void* o;
  const int32_t* lengths;
  int64_t q_batch_stride, q_head_stride;
  int64_t k_batch_stride, k_head_stride, k_token_stride;
  int64_t v_batch_stride, v_head_stride, v_token_stride;
  int64_t o_batch_stride, o_head_stride;
  int batch, heads, kv_heads, head_dim;
  int max_length;
  float scale;
  ElementType type;
  float* workspace;  // decode_workspace_floats() floats
  int splits;        // key chunks per (batch, kv head); 0 = choose
};

int decode_splits(int max_length);
int64_t decode_workspace_floats(int batch, int heads, int head_dim, int splits);
int launch_decode_attention(const DecodeAttentionParams& params, void* stream);

// RMSNorm with optional fused residual add: if residual != nullptr, x += residual first and the
// sum is written to residual_out. out = weight * x / sqrt(mean(x^2) + eps); statistics in float32.
struct RmsNormParams {
  const void* x;
  const void* residual;  // may be null
  void* residual_out;    // required when residual is given
  const void* weight;
  void* out;
  int64_t rows, cols;
  float eps;
  ElementType type;
};

int launch_rms_norm(const RmsNormParams& params, void* stream);

// LayerNorm with the same optional fused residual add; out = (x - mean) / sqrt(var + eps) * weight
// + bias (bias may be null), computed in float32 and rounded once.
struct LayerNormParams {
  const void* x;
  const void* residual;  // may be null
  void* residual_out;    // required when residual is given
  const void* weight;
  const void* bias;      // may be null
  void* out;
  int64_t rows, cols;
  float eps;
  ElementType type;
};

int launch_layer_norm(const LayerNormParams& params, void* stream);

// InternViT QK-norm: RMSNorm of q and of k over their full width (all heads together), in one
// launch. q/k rows are *_row_stride elements apart (slices of the fused qkv projection); the
// outputs are contiguous [rows, cols].
struct QkNormParams {
  const void* q;
  const void* k;
  const void* q_weight;
  const void* k_weight;
  void* q_out;
  void* k_out;
  int64_t rows, cols;
  int64_t q_row_stride, k_row_stride;
  float eps;
  ElementType type;
};

int launch_qk_rms_norm(const QkNormParams& params, void* stream);

}  // namespace internvl::kernels
