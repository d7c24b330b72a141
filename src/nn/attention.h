// Scaled dot-product attention with one entry point: a CUDA kernel where one is built and
// enabled for the inputs (kernels/cuda_ops.h; off by default until verified on a GPU), otherwise
// ATen (which is also the oracle for kernel tests). force_aten skips the kernels for A/B checks.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

namespace internvl::nn {

struct AttentionOptions {
  bool causal = false;
  std::optional<double> scale;  // default head_dim^-0.5
  bool force_aten = false;
};

// q [B, H, Lq, D], k/v [B, Hkv, Lk, D] with H % Hkv == 0 (grouped-query heads),
// mask: undefined, or boolean/additive broadcastable to [B, H, Lq, Lk] (true = attend).
// Returns [B, H, Lq, D]. Softmax runs in float32 for reduced-precision inputs.
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const AttentionOptions& options = {}, const at::Tensor& mask = {});

// One query token per sequence (a decode step without padding): q [B, H, 1, D], k/v
// [B, Hkv, L, D], every key attended. Grouped heads attend as the rows of their kv head
// (q viewed as [B, Hkv, H/Hkv, D]), so repeated K/V heads are never copied, on any device.
at::Tensor decode_attention_grouped(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                    const AttentionOptions& options = {});

// One decode step against whole cache buffers without host-side lengths (the CUDA graph path):
// q [B, H, 1, D]; k_cache/v_cache [B, Hkv, capacity, D]; lengths int32 [B] on q's device (keys
// 0..length-1 are attended). The kernel reads only those keys; the ATen path masks the rest, so
// the unused part of the cache must hold finite values (KVCache zero-fills in static mode).
at::Tensor decode_attention(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                            const at::Tensor& lengths, const AttentionOptions& options = {});

}  // namespace internvl::nn
