// ATen-facing entries of the CUDA kernels, with shape/dtype checks (InvalidArgument). Every
// layer calls these on CUDA tensors when the kernels are enabled, and ATen otherwise. The kernels
// are off by default until verified on a GPU: enable with set_cuda_kernels_enabled(true) or the
// environment variable INTERNVL_CUDA_KERNELS=1.
#pragma once

#include <ATen/core/Tensor.h>

#include <utility>

namespace internvl::kernels {

bool cuda_kernels_built();    // compiled with INTERNVL_WITH_CUDA
bool cuda_kernels_enabled();  // built and switched on
void set_cuda_kernels_enabled(bool enabled);
// Tests: fill every output and workspace with NaN before the kernel writes it.
void set_poison_outputs(bool poison);
bool poison_outputs();

// Whether attention() handles these inputs (CUDA, bf16/fp16, head dim 64/128, no explicit mask,
// GQA ratio the decode kernel supports).
bool attention_supported(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, bool has_mask);

// q [B, H, Lq, D], k/v [B, Hkv, Lk, D] -> [B, H, Lq, D]. Lq == 1 uses split-KV decode; otherwise
// the tiled prefill kernel (causal: bottom-right aligned).
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, bool causal, double scale);

// Packed variable-length sequences: q [Tq, H, D], k/v [Tk, Hkv, D], cu_seqlens int32 [B + 1].
at::Tensor varlen_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& cu_seqlens_q,
                            const at::Tensor& cu_seqlens_k, int64_t max_seqlen_q, bool causal, double scale);

// q [B, H, D]; caches [B, Hkv, capacity, D] (any strides with contiguous head_dim);
// lengths int32 [B]. -> [B, H, D]. max_length < 0 reads the lengths on the host to size the
// key chunks; a caller that knows a bound (the cache capacity) passes it instead, so nothing
// synchronises with the host (required inside a CUDA graph; lengths are then not range-checked).
at::Tensor decode_attention(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                            const at::Tensor& lengths, double scale, int64_t max_length = -1);
// Whether decode_attention() handles q [B, H, D] against caches [B, Hkv, capacity, D].
bool decode_attention_supported(const at::Tensor& q, const at::Tensor& k_cache);

// RMSNorm over the last dim; with `residual`, returns (norm(x + residual), x + residual).
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);
std::pair<at::Tensor, at::Tensor> add_rms_norm(const at::Tensor& x, const at::Tensor& residual,
                                               const at::Tensor& weight, double eps);

// LayerNorm over the last dim (bias may be undefined); with `residual`, returns
// (norm(x + residual), x + residual) with the sum rounded to the dtype first, as the models add.
at::Tensor layer_norm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps);
std::pair<at::Tensor, at::Tensor> add_layer_norm(const at::Tensor& x, const at::Tensor& residual,
                                                 const at::Tensor& weight, const at::Tensor& bias, double eps);

// InternViT QK-norm in one launch: q, k [..., D] with a contiguous last dim and evenly strided rows
// (e.g. slices of the fused qkv output) -> contiguous (rms_norm(q, q_weight), rms_norm(k, k_weight)).
std::pair<at::Tensor, at::Tensor> qk_rms_norm(const at::Tensor& q, const at::Tensor& k, const at::Tensor& q_weight,
                                              const at::Tensor& k_weight, double eps);

// Whether the norm kernels take x with this weight: enabled, CUDA, bf16/fp16, same dtype.
bool norm_supported(const at::Tensor& x, const at::Tensor& weight);

}  // namespace internvl::kernels
