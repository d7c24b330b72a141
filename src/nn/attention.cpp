#include "nn/attention.h"

#include <ATen/ATen.h>

#include <cmath>

#include "common/check.h"
#include "kernels/cuda_ops.h"

namespace internvl::nn {

at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const AttentionOptions& options,
                     const at::Tensor& mask) {
  INTERNVL_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, InvalidArgument,
                 "attention: q, k, v must be [batch, heads, tokens, head_dim]");
  INTERNVL_CHECK(k.sizes() == v.sizes(), InvalidArgument, "attention: k and v shapes differ");
  INTERNVL_CHECK(q.size(0) == k.size(0) && q.size(3) == k.size(3), InvalidArgument,
                 "attention: batch or head_dim of q and k differ");
  const int64_t heads = q.size(1), kv_heads = k.size(1);
  INTERNVL_CHECK(kv_heads > 0 && heads % kv_heads == 0, InvalidArgument, "attention: ", heads,
                 " query heads are not a multiple of ", kv_heads, " key/value heads");
  if (!options.force_aten && kernels::attention_supported(q, k, v, mask.defined())) {
    const double scale = options.scale.value_or(1.0 / std::sqrt(static_cast<double>(q.size(3))));
    return kernels::attention(q, k, v, options.causal, scale);
  }
  at::Tensor keys = k, values = v;
  // On CPU, SDPA serves grouped heads itself (enable_gqa): no copy of the repeated K/V per step.
  const bool native_gqa = kv_heads != heads && q.device().is_cpu();
  if (kv_heads != heads && !native_gqa) {
    // Each kv head serves heads/kv_heads consecutive query heads.
    // (expand + reshape rather than repeat_interleave, whose ATen form may read a size on the
    // host, which a CUDA graph capture forbids; the values and layout are the same.)
    const int64_t group = heads / kv_heads;
    auto repeat = [&](const at::Tensor& t) {
      return t.unsqueeze(2).expand({t.size(0), kv_heads, group, t.size(2), t.size(3)}).reshape(
          {t.size(0), heads, t.size(2), t.size(3)});
    };
    keys = repeat(k);
    values = repeat(v);
  }
  at::Tensor attend_mask = mask;
  if (options.causal && mask.defined()) {
    const int64_t lq = q.size(2), lk = k.size(2);
    // Bottom-right aligned causal mask (queries are the last lq of lk positions), as a KV cache needs.
    auto causal = at::ones({lq, lk}, q.options().dtype(at::kBool)).tril(lk - lq);
    attend_mask = mask.scalar_type() == at::kBool ? at::logical_and(mask, causal)
                                                  : mask.masked_fill(causal.logical_not(), -INFINITY);
  }
  // ATen's CPU flash path and the math path both accumulate in float32.
  return at::scaled_dot_product_attention(q, keys, values, attend_mask.defined() ? std::optional<at::Tensor>(attend_mask) : std::nullopt,
                                          /*dropout_p=*/0.0, options.causal && !attend_mask.defined(), options.scale,
                                          /*enable_gqa=*/native_gqa);
}

at::Tensor decode_attention_grouped(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                    const AttentionOptions& options) {
  INTERNVL_CHECK(q.dim() == 4 && q.size(2) == 1 && k.dim() == 4 && k.sizes() == v.sizes() && q.size(0) == k.size(0) &&
                     q.size(3) == k.size(3) && k.size(1) > 0 && q.size(1) % k.size(1) == 0,
                 InvalidArgument, "decode_attention_grouped: q must be [batch, heads, 1, head_dim] and k/v ",
                 "[batch, kv_heads, tokens, head_dim] with heads a multiple of kv_heads");
  const int64_t batch = q.size(0), heads = q.size(1), kv_heads = k.size(1), dim = q.size(3);
  AttentionOptions grouped = options;
  grouped.causal = false;  // one query: every cached key is in its past
  const auto rows = q.reshape({batch, kv_heads, heads / kv_heads, dim});
  return attention(rows, k, v, grouped).reshape({batch, heads, 1, dim});
}

at::Tensor decode_attention(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                            const at::Tensor& lengths, const AttentionOptions& options) {
  INTERNVL_CHECK(q.dim() == 4 && q.size(2) == 1, InvalidArgument, "decode_attention: q must be [batch, heads, 1, head_dim]");
  INTERNVL_CHECK(k_cache.dim() == 4 && k_cache.sizes() == v_cache.sizes() && k_cache.size(0) == q.size(0) &&
                     k_cache.size(3) == q.size(3),
                 InvalidArgument, "decode_attention: caches must be [batch, kv_heads, capacity, head_dim] matching q");
  INTERNVL_CHECK(lengths.dim() == 1 && lengths.size(0) == q.size(0) && lengths.scalar_type() == at::kInt &&
                     lengths.device() == q.device(),
                 InvalidArgument, "decode_attention: lengths must be int32 [batch] on q's device");
  const double scale = options.scale.value_or(1.0 / std::sqrt(static_cast<double>(q.size(3))));
  const auto q3 = q.select(2, 0);
  if (!options.force_aten && kernels::decode_attention_supported(q3, k_cache)) {
    return kernels::decode_attention(q3, k_cache, v_cache, lengths, scale, k_cache.size(2)).unsqueeze(2);
  }
  const auto positions = at::arange(k_cache.size(2), lengths.options().dtype(at::kLong));
  const auto mask = (positions.unsqueeze(0) < lengths.to(at::kLong).unsqueeze(1)).view({q.size(0), 1, 1, -1});
  AttentionOptions aten = options;
  aten.force_aten = true;
  aten.causal = false;
  aten.scale = scale;
  return attention(q, k_cache, v_cache, aten, mask);
}

}  // namespace internvl::nn
