#include "kernels/cpu_gemv.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <atomic>
#include <cmath>
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

// Every output y[m][j] is computed by the same sequence of float operations whatever the number
// of rows in the call and wherever j falls in a block or a thread's chunk: 8-lane FMA partial sums
// over k in order, a fixed horizontal sum, an FMA tail, then the bias. A decode batch therefore
// gives each sequence exactly the logits it would get alone (issue 12's exactness).

// Rows [n0, n1) of y[m][n] = dot(x[m], w[n]) + b[n] (m < rows), portable loop (no AVX2: the same
// order for every row count as well).
void gemv_plain(const float* x, int64_t ldx, int64_t rows, const float* w, const float* b, float* y, int64_t k, int64_t n,
                int64_t n0, int64_t n1) {
  for (int64_t j = n0; j < n1; ++j) {
    const float* wr = w + j * k;
    for (int64_t m = 0; m < rows; ++m) {
      const float* xr = x + m * ldx;
      float acc = 0.f;
      for (int64_t i = 0; i < k; ++i) acc = std::fma(xr[i], wr[i], acc);
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

// The end every output shares: the 8 lanes summed, the k % 8 tail by FMA, then the bias.
__attribute__((target("avx2,fma"))) inline float finish_output(__m256 acc, const float* xr, const float* wr, int64_t k8,
                                                                 int64_t k, float bias) {
  float s = hsum(acc);
  for (int64_t i = k8; i < k; ++i) s = __builtin_fmaf(xr[i], wr[i], s);
  return s + bias;
}

// Weight rows j..j+kBlock-1 against x rows 0..kRows-1 (x, y already offset to the first row):
// every weight is loaded once per call, and kBlock independent streams keep the memory busy.
template <int kRows, int kBlock>
__attribute__((target("avx2,fma"))) inline void gemv_block(const float* x, int64_t ldx, const float* w, const float* b,
                                                             float* y, int64_t k, int64_t n, int64_t j) {
  const int64_t k8 = k & ~int64_t{7};
  const float* wr[kBlock];
  for (int r = 0; r < kBlock; ++r) wr[r] = w + (j + r) * k;
  __m256 acc[kRows][kBlock];
  for (int m = 0; m < kRows; ++m)
    for (int r = 0; r < kBlock; ++r) acc[m][r] = _mm256_setzero_ps();
  for (int64_t i = 0; i < k8; i += 8) {
    __m256 a[kBlock];
    for (int r = 0; r < kBlock; ++r) a[r] = _mm256_loadu_ps(wr[r] + i);
    for (int m = 0; m < kRows; ++m) {
      const __m256 xv = _mm256_loadu_ps(x + m * ldx + i);
      for (int r = 0; r < kBlock; ++r) acc[m][r] = _mm256_fmadd_ps(a[r], xv, acc[m][r]);
    }
  }
  for (int m = 0; m < kRows; ++m) {
    for (int r = 0; r < kBlock; ++r) y[m * n + j + r] = finish_output(acc[m][r], x + m * ldx, wr[r], k8, k, b ? b[j + r] : 0.f);
  }
}

// Rows of x in groups of up to kGroup (the register budget: kGroup x kBlock accumulators), for
// the last weight rows of a range that do not fill a block.
template <int kGroup, int kBlock>
__attribute__((target("avx2,fma"))) inline void gemv_rows(const float* x, int64_t ldx, int64_t rows, const float* w,
                                                            const float* b, float* y, int64_t k, int64_t n, int64_t j) {
  static_assert(kGroup >= 1 && kGroup <= 4, "groups of 1..4 rows");
  for (int64_t m = 0; m < rows; m += kGroup) {
    const float* xm = x + m * ldx;
    float* ym = y + m * n;
    switch (std::min<int64_t>(kGroup, rows - m)) {
      case 1: gemv_block<1, kBlock>(xm, ldx, w, b, ym, k, n, j); break;
      case 2: gemv_block<std::min(2, kGroup), kBlock>(xm, ldx, w, b, ym, k, n, j); break;
      case 3: gemv_block<std::min(3, kGroup), kBlock>(xm, ldx, w, b, ym, k, n, j); break;
      default: gemv_block<kGroup, kBlock>(xm, ldx, w, b, ym, k, n, j); break;
    }
  }
}

// Several rows against one block of kBlock weight rows, k in chunks of kChunk: every row pair
// runs over a chunk while its weights are in L1, partial sums parked in `parked` between chunks
// (a store and a load of a vector are exact, so each output still sees the operations above).
constexpr int64_t kChunk = 256;

template <int kBlock>
__attribute__((target("avx2,fma"))) inline void gemv_chunked(const float* x, int64_t ldx, int64_t rows,
                                                               const float* w, const float* b, float* y, int64_t k,
                                                               int64_t n, int64_t j) {
  const int64_t k8 = k & ~int64_t{7};
  const float* wr[kBlock];
  for (int r = 0; r < kBlock; ++r) wr[r] = w + (j + r) * k;
  __m256 parked[kCpuGemvMaxRows][kBlock];
  for (int64_t m = 0; m < rows; ++m)
    for (int r = 0; r < kBlock; ++r) parked[m][r] = _mm256_setzero_ps();
  for (int64_t i0 = 0; i0 < k8; i0 += kChunk) {
    const int64_t i1 = std::min(k8, i0 + kChunk);
    for (int64_t m = 0; m < rows; m += 2) {
      const bool pair = m + 1 < rows;
      const float* x0 = x + m * ldx;
      const float* x1 = x + (pair ? m + 1 : m) * ldx;
      __m256 acc0[kBlock], acc1[kBlock];
      for (int r = 0; r < kBlock; ++r) {
        acc0[r] = parked[m][r];
        acc1[r] = pair ? parked[m + 1][r] : _mm256_setzero_ps();
      }
      if (m + 2 >= rows && i1 < k8) {  // the last pair fetches the next chunk
        for (int r = 0; r < kBlock; ++r)
          for (int64_t i = i1; i < std::min(k8, i1 + kChunk); i += 16) _mm_prefetch(reinterpret_cast<const char*>(wr[r] + i), _MM_HINT_T0);
      }
      for (int64_t i = i0; i < i1; i += 8) {
        __m256 a[kBlock];
        for (int r = 0; r < kBlock; ++r) a[r] = _mm256_loadu_ps(wr[r] + i);
        const __m256 v0 = _mm256_loadu_ps(x0 + i), v1 = _mm256_loadu_ps(x1 + i);
        for (int r = 0; r < kBlock; ++r) {
          acc0[r] = _mm256_fmadd_ps(a[r], v0, acc0[r]);
          acc1[r] = _mm256_fmadd_ps(a[r], v1, acc1[r]);
        }
      }
      for (int r = 0; r < kBlock; ++r) {
        parked[m][r] = acc0[r];
        if (pair) parked[m + 1][r] = acc1[r];
      }
    }
  }
  for (int64_t m = 0; m < rows; ++m) {
    for (int r = 0; r < kBlock; ++r) y[m * n + j + r] = finish_output(parked[m][r], x + m * ldx, wr[r], k8, k, b ? b[j + r] : 0.f);
  }
}

__attribute__((target("avx2,fma"))) void gemv_avx2(const float* x, int64_t ldx, int64_t rows, const float* w, const float* b,
                                                    float* y, int64_t k, int64_t n, int64_t n0, int64_t n1) {
  int64_t j = n0;
  if (rows == 1) {
    for (; j + kRowBlock <= n1; j += kRowBlock) gemv_block<1, kRowBlock>(x, ldx, w, b, y, k, n, j);
  } else {
    // Pairs of rows against 4 weight rows: 8 accumulators (+ 4 weights + 1 input) fit the 16
    // registers, and 4 weight streams keep the memory busy.
    for (; j + 4 <= n1; j += 4) gemv_chunked<4>(x, ldx, rows, w, b, y, k, n, j);
  }
  for (; j < n1; ++j) gemv_rows<4, 1>(x, ldx, rows, w, b, y, k, n, j);
}

bool has_avx2_fma() {
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes;
}
#endif

void gemv_range(const float* x, int64_t ldx, int64_t rows, const float* w, const float* b, float* y, int64_t k, int64_t n,
                int64_t n0, int64_t n1) {
#ifdef INTERNVL_GEMV_X86
  if (has_avx2_fma()) return gemv_avx2(x, ldx, rows, w, b, y, k, n, n0, n1);
#endif
  gemv_plain(x, ldx, rows, w, b, y, k, n, n0, n1);
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
  // Rows of x one 64-byte line apart from a multiple of 4 KiB: with k * 4 a multiple of 4096
  // (hidden 1024, 2048, 4096 ...) every x row and weight row would fall in the same L1 sets.
  int64_t ldx = k;
  at::Tensor padded;
  if (rows > 1) {
    ldx = ((k + 15) / 16) * 16 + 16;
    padded = at::zeros({rows, ldx}, x.options());
    padded.narrow(1, 0, k).copy_(xc.view({rows, k}));
  }
  const float* xp = rows > 1 ? padded.data_ptr<float>() : xc.data_ptr<float>();
  const float* wp = w.data_ptr<float>();
  const float* bp = bc.defined() ? bc.data_ptr<float>() : nullptr;
  float* yp = y.data_ptr<float>();
  // Chunks of whole row blocks, at least 256 KiB of weights each (thread start-up is not free).
  constexpr int64_t kGroup = kRowBlock;
  const int64_t groups_per_chunk = std::max<int64_t>(1, (256 * 1024 / 4) / k / kGroup);
  at::parallel_for(0, (n + kGroup - 1) / kGroup, groups_per_chunk, [&](int64_t g0, int64_t g1) {
    gemv_range(xp, ldx, rows, wp, bp, yp, k, n, g0 * kGroup, std::min(n, g1 * kGroup));
  });
  return y;
}

}  // namespace internvl::kernels
