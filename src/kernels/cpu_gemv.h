// Matrix-vector products for decode steps on CPU: y = x Wᵀ (+ b) for a few rows of x, float32.
// A decode step reads every weight once for one token, so it is bound by memory bandwidth; MKL's
// sgemm at M = 1 streams weights at about a third of what two cores can read here (docs/
// performance.md). These kernels read W row by row with AVX2/FMA (runtime-dispatched; a plain
// loop elsewhere), split over the intra-op threads by output rows. The dot products sum in a
// different order than MKL (float32 rounding differences around 1e-7 relative), but the same
// order for every row of every call: a row's result does not depend on the other rows.
#pragma once

#include <ATen/core/Tensor.h>

namespace internvl::kernels {

// Rows of x handled at once (a decode batch: one row per sequence); more rows go to ATen's GEMM.
constexpr int64_t kCpuGemvMaxRows = 16;

// x [..., K] with at most kCpuGemvMaxRows rows, w [N, K] contiguous, bias [N] or undefined; all
// float32 on CPU. INTERNVL_CPU_GEMV=0 in the environment turns it off (A/B checks).
bool cpu_gemv_supported(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias);
// -> [..., N].
at::Tensor cpu_gemv(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias);

void set_cpu_gemv_enabled(bool enabled);
bool cpu_gemv_enabled();

}  // namespace internvl::kernels
