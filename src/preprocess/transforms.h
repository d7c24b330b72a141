// The official image transforms: retrieval (square resize), classification (shortest side +
// centre crop) and the chat models' dynamic tiling, then ImageNet normalisation.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

#include "preprocess/image.h"

namespace internvl::preprocess {

// InternVL-C/G retrieval: Resize((size, size), BICUBIC), aspect ratio not kept.
RgbImage retrieval_transform(const RgbImage& image, int size);

// torchvision Resize(size) (shortest side -> size, long side truncated) + CenterCrop(size)
// with Python round-half-even offsets.
RgbImage classification_transform(const RgbImage& image, int size);

struct TileGrid {
  int cols = 1;
  int rows = 1;
};

// find_closest_aspect_ratio of the official README's dynamic_preprocess.
// Upper bound on max_tiles (the official models use 6 to 40): far past any context length.
constexpr int kMaxTiles = 1024;
TileGrid find_closest_grid(int width, int height, int min_tiles, int max_tiles, int tile_size);

struct TilingOptions {
  int tile_size = 448;
  int min_tiles = 1;
  int max_tiles = 12;
  bool use_thumbnail = true;  // appended only when the grid has more than one tile
};

struct Tiles {
  TileGrid grid;
  std::vector<RgbImage> tiles;  // row-major tiles, then the thumbnail if any
};

// dynamic_preprocess of the official README.
Tiles dynamic_tiles(const RgbImage& image, const TilingOptions& options);

// uint8 [N, 3, H, W] (CHW planes) of same-size images.
at::Tensor to_uint8_chw(const std::vector<RgbImage>& images);

// ToTensor + Normalize(ImageNet): ((float)u8 / 255 - mean[c]) / std[c] in float32 -> [N, 3, H, W].
at::Tensor normalize_imagenet(const std::vector<RgbImage>& images);

}  // namespace internvl::preprocess
