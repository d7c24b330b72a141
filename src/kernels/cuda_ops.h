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
// lengths int32 [B]. -> [B, H, D].
at::Tensor decode_attention(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                            const at::Tensor& lengths, double scale);

// RMSNorm over the last dim; with `residual`, returns (norm(x + residual), x + residual).
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);
std::pair<at::Tensor, at::Tensor> add_rms_norm(const at::Tensor& x, const at::Tensor& residual,
                                               const at::Tensor& weight, double eps);

}  // namespace internvl::kernels
