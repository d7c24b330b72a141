// The CPU decode GEMV against ATen's linear: odd sizes (tails of the 8-wide and 4-row loops),
// 1..4 rows, bias or none, strided inputs, several thread counts; and what it declines.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include "kernels/cpu_gemv.h"

using internvl::kernels::cpu_gemv;
using internvl::kernels::cpu_gemv_supported;

namespace {

TEST(CpuGemv, MatchesLinearAtOddSizesRowsAndThreads) {
  at::manual_seed(7);
  const int threads_before = at::get_num_threads();
  for (int threads : {1, 2}) {
    at::set_num_threads(threads);
    for (int64_t k : {1, 7, 8, 9, 64, 135, 896}) {
      for (int64_t n : {1, 3, 4, 5, 17, 300, 2053}) {
        for (int64_t rows = 1; rows <= internvl::kernels::kCpuGemvMaxRows; ++rows) {
          for (bool with_bias : {false, true}) {
            SCOPED_TRACE(::testing::Message() << "k " << k << " n " << n << " rows " << rows << " bias " << with_bias
                                              << " threads " << threads);
            const auto w = at::randn({n, k});
            const auto bias = with_bias ? at::randn({n}) : at::Tensor();
            const auto x = at::randn({1, rows, k});
            ASSERT_TRUE(cpu_gemv_supported(x, w, bias));
            const auto expected = at::linear(x, w, bias);
            const auto actual = cpu_gemv(x, w, bias);
            ASSERT_EQ(actual.sizes(), expected.sizes());
            // Only the summation order differs: float32 rounding of a k-term dot product.
            const double scale = (x.abs().matmul(w.abs().t())).max().item<double>() + 1.0;
            EXPECT_LE((actual - expected).abs().max().item<double>(), 1e-6 * scale * std::sqrt(double(k)));
          }
        }
      }
    }
  }
  at::set_num_threads(threads_before);
}

TEST(CpuGemv, StridedInputAndResultIndependentOfThreads) {
  at::manual_seed(3);
  const auto w = at::randn({1029, 300});
  const auto x = at::randn({300, 2}).t();  // [2, 300], not contiguous
  ASSERT_FALSE(x.is_contiguous());
  ASSERT_TRUE(cpu_gemv_supported(x, w, {}));
  const int threads_before = at::get_num_threads();
  at::set_num_threads(1);
  const auto one = cpu_gemv(x, w, {});
  at::set_num_threads(2);
  const auto two = cpu_gemv(x, w, {});
  at::set_num_threads(threads_before);
  EXPECT_TRUE(at::equal(one, two));  // each output is one thread's dot product
  EXPECT_TRUE(at::allclose(one, at::linear(x, w), 1e-5, 1e-4));
}

// A decode batch must give each sequence the bits it would get alone: a row's output may not
// depend on how many rows share the call or where its columns fall in a block or thread chunk.
TEST(CpuGemv, EachRowIsComputedAsIfAlone) {
  at::manual_seed(7);
  for (const int64_t k : {29, 64, 203}) {
    for (const int64_t n : {13, 64, 1001}) {
      const auto w = at::randn({n, k});
      const auto bias = at::randn({n});
      const auto x = at::randn({internvl::kernels::kCpuGemvMaxRows, k});
      const auto all = cpu_gemv(x, w, bias);
      for (int64_t m = 0; m < x.size(0); ++m) {
        ASSERT_TRUE(at::equal(all[m], cpu_gemv(x.narrow(0, m, 1), w, bias)[0])) << "row " << m << " k " << k << " n " << n;
      }
      for (const int64_t rows : {2, 3, 5, 7}) {
        ASSERT_TRUE(at::equal(all.narrow(0, 1, rows), cpu_gemv(x.narrow(0, 1, rows), w, bias))) << rows << " rows";
      }
    }
  }
}

TEST(CpuGemv, DeclinesWhatItDoesNotHandle) {
  const auto w = at::randn({8, 16});
  EXPECT_FALSE(cpu_gemv_supported(at::randn({internvl::kernels::kCpuGemvMaxRows + 1, 16}), w, {}));  // too many rows
  EXPECT_FALSE(cpu_gemv_supported(at::randn({1, 15}), w, {}));                       // K mismatch
  EXPECT_FALSE(cpu_gemv_supported(at::randn({1, 16}).to(at::kBFloat16), w, {}));    // dtype
  EXPECT_FALSE(cpu_gemv_supported(at::randn({1, 16}), w.t().contiguous().t(), {}));  // strided weight
  EXPECT_FALSE(cpu_gemv_supported(at::randn({1, 16}), w, at::randn({7})));           // bias size
  const auto trainable = at::randn({8, 16}).requires_grad_();
  EXPECT_FALSE(cpu_gemv_supported(at::randn({1, 16}), trainable, {}));  // autograd would be bypassed
  {
    at::AutoGradMode no_grad(false);
    EXPECT_TRUE(cpu_gemv_supported(at::randn({1, 16}), trainable, {}));
  }
  internvl::kernels::set_cpu_gemv_enabled(false);
  EXPECT_FALSE(cpu_gemv_supported(at::randn({1, 16}), w, {}));
  internvl::kernels::set_cpu_gemv_enabled(true);
  EXPECT_THROW(cpu_gemv(at::randn({internvl::kernels::kCpuGemvMaxRows + 1, 16}), w, {}), std::exception);
}

}  // namespace
