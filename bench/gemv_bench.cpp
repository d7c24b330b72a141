// Decode-step matrix-vector products on CPU: kernels::cpu_gemv against ATen's at::linear (MKL
// sgemm) on the same weights, same threads, same process; and a plain read of the weights (sum)
// as the bandwidth roofline.
//   gemv_bench [--rows N (default 896)] [--cols K (default 896: Qwen2.5-0.5B's hidden)] [--m 1]
//              [--threads T] [--iters I]
// Prints one JSON line per shape: GB/s of weights streamed by each.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "kernels/cpu_gemv.h"

namespace {

template <typename Fn>
double best_seconds(int iters, Fn&& fn) {
  double best = 1e30;
  for (int i = 0; i < iters; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 0, iters = 20, m = 1;
  std::vector<std::pair<int64_t, int64_t>> shapes;
  int64_t rows = 0, cols = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i];
    const int64_t value = std::stoll(argv[i + 1]);
    if (key == "--rows") rows = value;
    else if (key == "--cols") cols = value;
    else if (key == "--threads") threads = static_cast<int>(value);
    else if (key == "--iters") iters = static_cast<int>(value);
    else if (key == "--m") m = static_cast<int>(value);
  }
  if (threads > 0) at::set_num_threads(threads);
  if (rows > 0 && cols > 0) {
    shapes.push_back({rows, cols});
  } else {
    // Qwen2.5-0.5B decode: q/k/v fused size, o_proj, gate/up, down, lm_head.
    shapes = {{896, 896}, {4864, 896}, {896, 4864}, {151674, 896}};
  }
  c10::InferenceMode guard;
  for (const auto& [n, k] : shapes) {
    const auto w = at::randn({n, k});
    const auto x = at::randn({m, k});
    const auto bias = at::randn({n});
    const double bytes = static_cast<double>(n) * k * 4;
    // Enough repeats that the weights leave the caches between calls (32 MiB L3 here).
    const int copies = static_cast<int>(std::max<double>(1, 96e6 / bytes));
    std::vector<at::Tensor> ws(copies);
    for (auto& c : ws) c = w.clone();
    int next = 0;
    const double t_aten = best_seconds(iters, [&] { at::linear(x, ws[next++ % copies], bias); });
    const double t_ours = best_seconds(iters, [&] { internvl::kernels::cpu_gemv(x, ws[next++ % copies], bias); });
    const double t_read = best_seconds(iters, [&] { ws[next++ % copies].sum(); });
    const auto diff = (internvl::kernels::cpu_gemv(x, w, bias) - at::linear(x, w, bias)).abs().max().item<float>();
    std::printf("{\"n\": %lld, \"k\": %lld, \"m\": %d, \"threads\": %d, \"aten_gbs\": %.1f, \"cpu_gemv_gbs\": %.1f, "
                "\"read_gbs\": %.1f, \"ratio\": %.2f, \"max_abs_diff\": %.3g}\n",
                static_cast<long long>(n), static_cast<long long>(k), m, at::get_num_threads(), bytes / t_aten / 1e9,
                bytes / t_ours / 1e9, bytes / t_read / 1e9, t_aten / t_ours, diff);
  }
  return 0;
}
