#include "nn/rotary.h"

#include <ATen/ATen.h>

namespace internvl::nn {

std::pair<at::Tensor, at::Tensor> rotary_cos_sin(const at::Tensor& positions, int64_t head_dim, double base) {
  const auto f32 = at::TensorOptions().dtype(at::kFloat).device(positions.device());
  const auto exponents = at::arange(0, head_dim, 2, f32.dtype(at::kLong)).to(at::kFloat) / static_cast<double>(head_dim);
  const auto inv_freq = 1.0 / at::pow(base, exponents);
  const auto freqs = at::outer(positions.to(at::kFloat), inv_freq);  // [L, hd/2]
  const auto emb = at::cat({freqs, freqs}, -1);
  return {emb.cos(), emb.sin()};
}

at::Tensor apply_rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  const auto rotated = at::cat({-x.slice(-1, half), x.slice(-1, 0, half)}, -1);
  return x * cos.to(x.scalar_type()) + rotated * sin.to(x.scalar_type());
}

}  // namespace internvl::nn
