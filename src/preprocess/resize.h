// Pillow-compatible BICUBIC resize (Image.resize(size, BICUBIC) in Pillow 9.x): a = -0.5 cubic
// kernel, support widened by the downscale factor (antialiasing), separable two passes
// (horizontal first) with an 8-bit intermediate, fixed-point weights, rounding and clipping.
#pragma once

#include "preprocess/image.h"

namespace internvl::preprocess {

RgbImage resize_bicubic(const RgbImage& image, int out_width, int out_height);

}  // namespace internvl::preprocess
