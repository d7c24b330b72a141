// Pillow-compatible BICUBIC resampling (Image.resize(size, Image.BICUBIC), Pillow 9.x), written
// from the algorithm's description:
//  * per output axis: scale = in / out; filterscale = max(scale, 1) (the kernel is widened when
//    shrinking, i.e. antialiasing); support = 2 * filterscale;
//  * output sample x covers input samples [xmin, xmin + count) with center = (x + 0.5) * scale,
//    xmin = max(int(center - support + 0.5), 0), xmax = min(int(center + support + 0.5), in);
//    weight of input i is cubic((i - center + 0.5) / filterscale) (Keys kernel, a = -0.5),
//    normalised to sum 1 in double, then rounded to fixed point with 22 fractional bits;
//  * integer accumulation starting at 0.5 (1 << 21), result >> 22 clipped to 0..255;
//  * horizontal pass first into an 8-bit image covering only the rows the vertical pass reads,
//    then the vertical pass; a pass whose size does not change is skipped.
// The floating-point expressions are evaluated in the same order as Pillow's so that the
// rounded fixed-point weights are identical.
#include "preprocess/resize.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "common/check.h"

namespace internvl::preprocess {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;  // 22 fractional bits
constexpr double kBicubicSupport = 2.0;
constexpr int64_t kMaxOutputPixels = int64_t{1} << 28;

// Keys cubic convolution kernel with a = -0.5, in Horner form.
inline double bicubic_kernel(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

// Fixed-point filter taps of one axis: for output sample i, `count[i]` taps starting at input
// sample `first[i]`, weights at `weights[i * taps_per_output ...]`.
struct AxisCoefficients {
  int taps_per_output = 0;
  std::vector<int> first;
  std::vector<int> count;
  std::vector<int32_t> weights;
};

AxisCoefficients compute_coefficients(int in_size, int out_size) {
  const double scale = static_cast<double>(in_size) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = kBicubicSupport * filterscale;
  const double inv_filterscale = 1.0 / filterscale;

  AxisCoefficients c;
  c.taps_per_output = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.first.resize(out_size);
  c.count.resize(out_size);
  c.weights.assign(static_cast<std::size_t>(out_size) * c.taps_per_output, 0);
  std::vector<double> w(c.taps_per_output);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    int xmin = static_cast<int>(center - support + 0.5);  // truncation, as C's (int) cast
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    const int n = xmax - xmin;
    double total = 0.0;
    for (int x = 0; x < n; ++x) {
      const double weight = bicubic_kernel((x + xmin - center + 0.5) * inv_filterscale);
      w[x] = weight;
      total += weight;
    }
    int32_t* out = c.weights.data() + static_cast<std::size_t>(xx) * c.taps_per_output;
    for (int x = 0; x < n; ++x) {
      const double normalised = total != 0.0 ? w[x] / total : w[x];
      const double scaled = normalised * (1 << kPrecisionBits);
      out[x] = normalised < 0 ? static_cast<int32_t>(-0.5 + scaled) : static_cast<int32_t>(0.5 + scaled);
    }
    c.first[xx] = xmin;
    c.count[xx] = n;
  }
  return c;
}

inline uint8_t clip8(int32_t value) {
  if (value >= (1 << kPrecisionBits << 8)) return 255;
  if (value <= 0) return 0;
  return static_cast<uint8_t>(value >> kPrecisionBits);
}

// Rows [row_begin, row_end) of `in` resampled horizontally to `c.first.size()` columns.
RgbImage resample_horizontal(const RgbImage& in, int row_begin, int row_end, const AxisCoefficients& c) {
  const int out_width = static_cast<int>(c.first.size());
  RgbImage out;
  out.width = out_width;
  out.height = row_end - row_begin;
  out.pixels.resize(static_cast<std::size_t>(out.width) * out.height * 3);
  constexpr int32_t kHalf = 1 << (kPrecisionBits - 1);
  for (int y = row_begin; y < row_end; ++y) {
    const uint8_t* src = in.row(y);
    uint8_t* dst = out.row(y - row_begin);
    for (int xx = 0; xx < out_width; ++xx) {
      const int32_t* k = c.weights.data() + static_cast<std::size_t>(xx) * c.taps_per_output;
      const uint8_t* s = src + static_cast<std::size_t>(c.first[xx]) * 3;
      int32_t r = kHalf, g = kHalf, b = kHalf;
      for (int x = 0; x < c.count[xx]; ++x) {
        r += s[3 * x] * k[x];
        g += s[3 * x + 1] * k[x];
        b += s[3 * x + 2] * k[x];
      }
      dst[3 * xx] = clip8(r);
      dst[3 * xx + 1] = clip8(g);
      dst[3 * xx + 2] = clip8(b);
    }
  }
  return out;
}

// Vertical pass; `row_offset` is subtracted from the coefficients' first rows (the horizontal
// pass kept only rows from that offset on).
RgbImage resample_vertical(const RgbImage& in, int row_offset, const AxisCoefficients& c) {
  const int out_height = static_cast<int>(c.first.size());
  RgbImage out;
  out.width = in.width;
  out.height = out_height;
  out.pixels.resize(static_cast<std::size_t>(out.width) * out.height * 3);
  const std::size_t row_values = static_cast<std::size_t>(in.width) * 3;
  constexpr int32_t kHalf = 1 << (kPrecisionBits - 1);
  std::vector<int32_t> acc(row_values);
  for (int yy = 0; yy < out_height; ++yy) {
    const int32_t* k = c.weights.data() + static_cast<std::size_t>(yy) * c.taps_per_output;
    const int ymin = c.first[yy] - row_offset;
    std::fill(acc.begin(), acc.end(), kHalf);
    // Row-wise accumulation: the same integer sums as Pillow's column-wise loop.
    for (int y = 0; y < c.count[yy]; ++y) {
      const uint8_t* src = in.row(ymin + y);
      const int32_t weight = k[y];
      for (std::size_t i = 0; i < row_values; ++i) acc[i] += src[i] * weight;
    }
    uint8_t* dst = out.row(yy);
    for (std::size_t i = 0; i < row_values; ++i) dst[i] = clip8(acc[i]);
  }
  return out;
}

}  // namespace

RgbImage resize_bicubic(const RgbImage& image, int out_width, int out_height) {
  INTERNVL_CHECK(image.width > 0 && image.height > 0 &&
                     image.pixels.size() == static_cast<std::size_t>(image.width) * image.height * 3,
                 InvalidArgument, "resize_bicubic: invalid input image (", image.width, "x", image.height, ", ",
                 image.pixels.size(), " bytes)");
  INTERNVL_CHECK(out_width > 0 && out_height > 0, InvalidArgument,
                 "resize_bicubic: output size must be positive, got ", out_width, "x", out_height);
  INTERNVL_CHECK(static_cast<int64_t>(out_width) * out_height <= kMaxOutputPixels, InvalidArgument,
                 "resize_bicubic: output size too large (", out_width, "x", out_height, ")");

  const bool need_horizontal = out_width != image.width;
  const bool need_vertical = out_height != image.height;
  if (!need_horizontal && !need_vertical) return image;

  const AxisCoefficients vertical = compute_coefficients(image.height, out_height);
  if (!need_horizontal) return resample_vertical(image, 0, vertical);

  const AxisCoefficients horizontal = compute_coefficients(image.width, out_width);
  // Only the input rows the vertical pass reads.
  const int row_begin = vertical.first.front();
  const int row_end = vertical.first.back() + vertical.count.back();
  RgbImage temp = resample_horizontal(image, row_begin, row_end, horizontal);
  if (!need_vertical) return temp;
  return resample_vertical(temp, row_begin, vertical);
}

}  // namespace internvl::preprocess
