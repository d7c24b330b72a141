#include "kernels/cpu_gemv.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define INTERNVL_GEMV_X86 1
#endif

#include "common/check.h"

namespace internvl::kernels {
namespace {

// Weight rows one pass of the single-row kernel streams at once (and the unit of the thread split).
constexpr int kRowBlock = 8;

std::atomic<bool>& enabled_flag() {
  static std::atomic<bool> flag{[] {
    const char* env = std::getenv("INTERNVL_CPU_GEMV");
    return env == nullptr || std::strcmp(env, "0") != 0;
  }()};
  return flag;
}

// Rows [n0, n1) of y[m][n] = dot(x[m], w[n]) + b[n] (m < rows), portable loop.
void gemv_plain(const float* x, int64_t rows, const float* w, const float* b, float* y, int64_t k, int64_t n,
                int64_t n0, int64_t n1) {
  for (int64_t j = n0; j < n1; ++j) {
    const float* wr = w + j * k;
    for (int64_t m = 0; m < rows; ++m) {
      const float* xr = x + m * k;
      float acc = 0.f;
      for (int64_t i = 0; i < k; ++i) acc += xr[i] * wr[i];
      y[m * n + j] = acc + (b ? b[j] : 0.f);
    }
  }
}

#ifdef INTERNVL_GEMV_X86
__attribute__((target("avx2,fma"))) inline float hsum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 1)));
}

// kBlock weight rows at a time against each of the kRows x rows: every weight is loaded once per
// call, and kBlock independent streams keep the memory system busy.
template <int kRows, int kBlock>
__attribute__((target("avx2,fma"))) void gemv_avx2(const float* x, const float* w, const float* b, float* y,
                                                    int64_t k, int64_t n, int64_t n0, int64_t n1) {
  const int64_t k8 = k & ~int64_t{7};
  int64_t j = n0;
  for (; j + kBlock <= n1; j += kBlock) {
    const float* wr[kBlock];
    for (int r = 0; r < kBlock; ++r) wr[r] = w + (j + r) * k;
    __m256 acc[kRows][kBlock];
    for (int m = 0; m < kRows; ++m)
      for (int r = 0; r < kBlock; ++r) acc[m][r] = _mm256_setzero_ps();
    for (int64_t i = 0; i < k8; i += 8) {
      __m256 a[kBlock];
      for (int r = 0; r < kBlock; ++r) a[r] = _mm256_loadu_ps(wr[r] + i);
      for (int m = 0; m < kRows; ++m) {
        const __m256 xv = _mm256_loadu_ps(x + m * k + i);
        for (int r = 0; r < kBlock; ++r) acc[m][r] = _mm256_fmadd_ps(a[r], xv, acc[m][r]);
      }
    }
    for (int m = 0; m < kRows; ++m) {
      const float* xr = x + m * k;
      for (int r = 0; r < kBlock; ++r) {
        float s = hsum(acc[m][r]);
        for (int64_t i = k8; i < k; ++i) s += xr[i] * wr[r][i];
        y[m * n + j + r] = s + (b ? b[j + r] : 0.f);
      }
    }
  }
  if (j < n1) gemv_plain(x, kRows, w, b, y, k, n, j, n1);
}

bool has_avx2_fma() {
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes;
}
#endif

void gemv_range(const float* x, int64_t rows, const float* w, const float* b, float* y, int64_t k, int64_t n,
                int64_t n0, int64_t n1) {
#ifdef INTERNVL_GEMV_X86
  if (has_avx2_fma()) {
    switch (rows) {
      case 1: return gemv_avx2<1, kRowBlock>(x, w, b, y, k, n, n0, n1);
      case 2: return gemv_avx2<2, 4>(x, w, b, y, k, n, n0, n1);
      case 3: return gemv_avx2<3, 4>(x, w, b, y, k, n, n0, n1);
      default: return gemv_avx2<4, 4>(x, w, b, y, k, n, n0, n1);
    }
  }
#endif
  gemv_plain(x, rows, w, b, y, k, n, n0, n1);
}

}  // namespace

void set_cpu_gemv_enabled(bool enabled) { enabled_flag() = enabled; }
bool cpu_gemv_enabled() { return enabled_flag(); }

bool cpu_gemv_supported(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias) {
  if (!cpu_gemv_enabled() || !x.defined() || !w.defined()) return false;
  if (!x.device().is_cpu() || !w.device().is_cpu() || x.scalar_type() != at::kFloat || w.scalar_type() != at::kFloat)
    return false;
  if (w.dim() != 2 || !w.is_contiguous() || x.dim() < 1 || x.size(-1) != w.size(1) || w.size(1) == 0) return false;
  if (bias.defined() && (bias.scalar_type() != at::kFloat || !bias.device().is_cpu() || bias.numel() != w.size(0)))
    return false;
  const int64_t rows = x.numel() / w.size(1);
  // No autograd graph is recorded through it (parameters keep requires_grad under NoGradGuard).
  const bool needs_grad = at::GradMode::is_enabled() && (x.requires_grad() || w.requires_grad() ||
                                                          (bias.defined() && bias.requires_grad()));
  return rows >= 1 && rows <= kCpuGemvMaxRows && !needs_grad;
}

at::Tensor cpu_gemv(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias) {
  INTERNVL_CHECK(cpu_gemv_supported(x, w, bias), InvalidArgument, "cpu_gemv: unsupported inputs");
  const int64_t k = w.size(1), n = w.size(0), rows = x.numel() / k;
  const auto xc = x.contiguous();
  const auto bc = bias.defined() ? bias.contiguous() : bias;
  auto sizes = x.sizes().vec();
  sizes.back() = n;
  auto y = at::empty(sizes, x.options());
  const float* xp = xc.data_ptr<float>();
  const float* wp = w.data_ptr<float>();
  const float* bp = bc.defined() ? bc.data_ptr<float>() : nullptr;
  float* yp = y.data_ptr<float>();
  // Chunks of whole row blocks, at least 256 KiB of weights each (thread start-up is not free).
  constexpr int64_t kGroup = kRowBlock;
  const int64_t groups_per_chunk = std::max<int64_t>(1, (256 * 1024 / 4) / k / kGroup);
  at::parallel_for(0, (n + kGroup - 1) / kGroup, groups_per_chunk, [&](int64_t g0, int64_t g1) {
    gemv_range(xp, rows, wp, bp, yp, k, n, g0 * kGroup, std::min(n, g1 * kGroup));
  });
  return y;
}

}  // namespace internvl::kernels
