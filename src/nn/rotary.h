// Rotary position embedding, rotate-half convention (LLaMA / InternLM2 / QLLaMA).
#pragma once

#include <ATen/core/Tensor.h>

#include <utility>

namespace internvl::nn {

// cos/sin tables [L, head_dim] for integer positions [L], computed in float32 exactly as the
// official code: inv_freq = 1 / base^(arange(0, d, 2) / d), freqs = outer(t, inv_freq),
// emb = cat(freqs, freqs).
std::pair<at::Tensor, at::Tensor> rotary_cos_sin(const at::Tensor& positions, int64_t head_dim, double base);

// x [B, H, L, hd] (or any [..., L, hd]) with cos/sin [L, hd]: x*cos + rotate_half(x)*sin.
at::Tensor apply_rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

}  // namespace internvl::nn
