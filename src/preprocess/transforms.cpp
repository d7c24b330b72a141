// The official image transforms on decoded RGB images:
//  * retrieval_transform: `build_transform('retrieval', size)` of
//    clip_benchmark/models/internvl_huggingface/__init__.py -> Resize((size, size), BICUBIC);
//  * classification_transform: `build_transform('classification', size)` -> torchvision 0.14
//    Resize(size) + CenterCrop(size) on a PIL image;
//  * find_closest_grid / dynamic_tiles: `find_closest_aspect_ratio` / `dynamic_preprocess` of the
//    official InternVL README (the chat models' `load_image`);
//  * to_uint8_chw / normalize_imagenet: torchvision ToTensor + Normalize(IMAGENET_MEAN, IMAGENET_STD).
#include "preprocess/transforms.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <utility>

#include "common/check.h"
#include "preprocess/resize.h"

namespace internvl::preprocess {
namespace {

void check_image(const RgbImage& image, const char* where) {
  INTERNVL_CHECK(image.width > 0 && image.height > 0 &&
                     image.pixels.size() == static_cast<std::size_t>(image.width) * image.height * 3,
                 InvalidArgument, where, ": invalid image (", image.width, "x", image.height, ", ",
                 image.pixels.size(), " bytes)");
}

// Python's round() on a float: round half to even.
int round_half_even(double value) { return static_cast<int>(std::nearbyint(value)); }

// Copies the rectangle [x, x + w) x [y, y + h) of `image`.
RgbImage crop(const RgbImage& image, int x, int y, int w, int h) {
  RgbImage out;
  out.width = w;
  out.height = h;
  out.pixels.resize(static_cast<std::size_t>(w) * h * 3);
  for (int r = 0; r < h; ++r) {
    std::memcpy(out.row(r), image.row(y + r) + static_cast<std::size_t>(x) * 3, static_cast<std::size_t>(w) * 3);
  }
  return out;
}

// torchvision F.center_crop on a PIL image, crop at int(round((size_in - size_out) / 2.0)).
// (torchvision zero-pads an image smaller than the crop; after Resize(size) the short side equals
// the crop size, so that case cannot occur in classification_transform.)
RgbImage center_crop(const RgbImage& image, int crop_width, int crop_height) {
  INTERNVL_CHECK(crop_width <= image.width && crop_height <= image.height, InvalidArgument, "center_crop: crop ",
                 crop_width, "x", crop_height, " larger than the image ", image.width, "x", image.height);
  const int top = round_half_even((image.height - crop_height) / 2.0);
  const int left = round_half_even((image.width - crop_width) / 2.0);
  return crop(image, left, top, crop_width, crop_height);
}

void check_batch(const std::vector<RgbImage>& images, const char* where) {
  INTERNVL_CHECK(!images.empty(), InvalidArgument, where, ": no images");
  for (std::size_t i = 0; i < images.size(); ++i) {
    check_image(images[i], where);
    INTERNVL_CHECK(images[i].width == images[0].width && images[i].height == images[0].height, InvalidArgument,
                   where, ": image ", i, " is ", images[i].width, "x", images[i].height, ", image 0 is ",
                   images[0].width, "x", images[0].height, " (all must have the same size)");
  }
}

}  // namespace

RgbImage retrieval_transform(const RgbImage& image, int size) {
  check_image(image, "retrieval_transform");
  INTERNVL_CHECK(size > 0, InvalidArgument, "retrieval_transform: size must be positive, got ", size);
  return resize_bicubic(image, size, size);
}

RgbImage classification_transform(const RgbImage& image, int size) {
  check_image(image, "classification_transform");
  INTERNVL_CHECK(size > 0, InvalidArgument, "classification_transform: size must be positive, got ", size);
  // torchvision 0.14 _compute_resized_output_size for an int size: the short side becomes
  // `size`, the long side int(size * long / short) (Python float division, truncated).
  const int w = image.width;
  const int h = image.height;
  const int shorter = std::min(w, h);
  const int longer = std::max(w, h);
  const int new_long =
      static_cast<int>(static_cast<double>(static_cast<int64_t>(size) * longer) / static_cast<double>(shorter));
  const int new_w = w <= h ? size : new_long;
  const int new_h = w <= h ? new_long : size;
  // F.resize returns the image itself when the size is unchanged (resize_bicubic does too).
  const RgbImage resized = resize_bicubic(image, new_w, new_h);
  return center_crop(resized, size, size);
}

TileGrid find_closest_grid(int width, int height, int min_tiles, int max_tiles, int tile_size) {
  INTERNVL_CHECK(width > 0 && height > 0, InvalidArgument, "find_closest_grid: image size must be positive, got ",
                 width, "x", height);
  INTERNVL_CHECK(min_tiles >= 1 && max_tiles >= min_tiles, InvalidArgument,
                 "find_closest_grid: need 1 <= min_tiles <= max_tiles, got ", min_tiles, " and ", max_tiles);
  INTERNVL_CHECK(tile_size > 0, InvalidArgument, "find_closest_grid: tile_size must be positive, got ", tile_size);
  // The grid list grows as max_tiles * log(max_tiles); a huge value must not exhaust memory.
  INTERNVL_CHECK(max_tiles <= kMaxTiles, InvalidArgument, "find_closest_grid: max_tiles ", max_tiles,
                 " exceeds the limit of ", kMaxTiles);
  // target_ratios: every (i, j) with i, j in 1..max and min <= i * j <= max, sorted by i * j.
  // The official code sorts a Python set, so the order among grids with equal products is the
  // set's iteration order; it cannot change the result: two grids with equal product and an
  // exactly tied distance have a grid of smaller product with a ratio strictly between them
  // (i / (P/i - 1)), which comes earlier and is strictly closer (when min_tiles = 1).
  std::vector<std::pair<int, int>> grids;
  for (int i = 1; i <= max_tiles; ++i) {
    for (int j = 1; j <= max_tiles / i; ++j) {
      if (i * j >= min_tiles) grids.emplace_back(i, j);
    }
  }
  std::stable_sort(grids.begin(), grids.end(),
                   [](const auto& a, const auto& b) { return a.first * a.second < b.first * b.second; });

  const double aspect_ratio = static_cast<double>(width) / static_cast<double>(height);
  const double area = static_cast<double>(width) * static_cast<double>(height);
  double best_diff = std::numeric_limits<double>::infinity();
  TileGrid best;  // (1, 1)
  for (const auto& [cols, rows] : grids) {
    const double target = static_cast<double>(cols) / static_cast<double>(rows);
    const double diff = std::fabs(aspect_ratio - target);
    if (diff < best_diff) {
      best_diff = diff;
      best = TileGrid{cols, rows};
    } else if (diff == best_diff) {
      // Python: area > 0.5 * image_size * image_size * ratio[0] * ratio[1] (float arithmetic).
      if (area > 0.5 * tile_size * tile_size * cols * rows) best = TileGrid{cols, rows};
    }
  }
  return best;
}

Tiles dynamic_tiles(const RgbImage& image, const TilingOptions& options) {
  check_image(image, "dynamic_tiles");
  INTERNVL_CHECK(options.tile_size > 0, InvalidArgument, "dynamic_tiles: tile_size must be positive, got ",
                 options.tile_size);
  Tiles result;
  result.grid =
      find_closest_grid(image.width, image.height, options.min_tiles, options.max_tiles, options.tile_size);
  const int tile = options.tile_size;
  const int cols = result.grid.cols;
  const int rows = result.grid.rows;
  INTERNVL_CHECK(static_cast<int64_t>(tile) * cols <= std::numeric_limits<int>::max() &&
                     static_cast<int64_t>(tile) * rows <= std::numeric_limits<int>::max(),
                 InvalidArgument, "dynamic_tiles: ", cols, "x", rows, " tiles of ", tile, " pixels are too large");
  const RgbImage resized = resize_bicubic(image, tile * cols, tile * rows);
  result.tiles.reserve(static_cast<std::size_t>(cols) * rows + 1);
  if (cols == 1 && rows == 1) {
    result.tiles.push_back(resized);
  } else {
    for (int r = 0; r < rows; ++r) {
      for (int c = 0; c < cols; ++c) result.tiles.push_back(crop(resized, c * tile, r * tile, tile, tile));
    }
  }
  if (options.use_thumbnail && result.tiles.size() != 1) {
    result.tiles.push_back(resize_bicubic(image, tile, tile));
  }
  return result;
}

at::Tensor to_uint8_chw(const std::vector<RgbImage>& images) {
  check_batch(images, "to_uint8_chw");
  const int64_t n = static_cast<int64_t>(images.size());
  const int64_t h = images[0].height;
  const int64_t w = images[0].width;
  at::Tensor out = at::empty({n, 3, h, w}, at::TensorOptions().dtype(at::kByte));  // [N, 3, H, W]
  uint8_t* dst = out.data_ptr<uint8_t>();
  const int64_t plane = h * w;
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* src = images[i].pixels.data();
    uint8_t* base = dst + i * 3 * plane;
    for (int64_t p = 0; p < plane; ++p) {
      base[p] = src[3 * p];
      base[plane + p] = src[3 * p + 1];
      base[2 * plane + p] = src[3 * p + 2];
    }
  }
  return out;
}

at::Tensor normalize_imagenet(const std::vector<RgbImage>& images) {
  check_batch(images, "normalize_imagenet");
  // IMAGENET_MEAN / IMAGENET_STD as float32, ToTensor's division by 255 in float32.
  constexpr float kMean[3] = {0.485f, 0.456f, 0.406f};
  constexpr float kStd[3] = {0.229f, 0.224f, 0.225f};
  float table[3][256];
  for (int c = 0; c < 3; ++c) {
    for (int v = 0; v < 256; ++v) table[c][v] = (static_cast<float>(v) / 255.0f - kMean[c]) / kStd[c];
  }
  const int64_t n = static_cast<int64_t>(images.size());
  const int64_t h = images[0].height;
  const int64_t w = images[0].width;
  at::Tensor out = at::empty({n, 3, h, w}, at::TensorOptions().dtype(at::kFloat));  // [N, 3, H, W]
  float* dst = out.data_ptr<float>();
  const int64_t plane = h * w;
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* src = images[i].pixels.data();
    float* base = dst + i * 3 * plane;
    for (int64_t p = 0; p < plane; ++p) {
      base[p] = table[0][src[3 * p]];
      base[plane + p] = table[1][src[3 * p + 1]];
      base[2 * plane + p] = table[2][src[3 * p + 2]];
    }
  }
  return out;
}

}  // namespace internvl::preprocess
