// Image decoding to 8-bit RGB exactly as the official pipelines' PIL `Image.open(f).convert('RGB')`:
// grey replicated, alpha dropped (not composited), palette looked up (transparency ignored),
// 16-bit samples clipped to 0..255 (not scaled), EXIF orientation ignored.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace cv {
class Mat;
}

namespace internvl::preprocess {

// Interleaved RGB, row-major, 3 bytes per pixel, no row padding.
struct RgbImage {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> pixels;  // size width * height * 3

  uint8_t* row(int y) { return pixels.data() + static_cast<std::size_t>(y) * width * 3; }
  const uint8_t* row(int y) const { return pixels.data() + static_cast<std::size_t>(y) * width * 3; }
};

// Decompression-bomb guard: Pillow 9.4 refuses images above 2 x Image.MAX_IMAGE_PIXELS
// (2 x 89,478,485) and so do we by default. Dimensions are read from the header (PNG, JPEG, GIF,
// BMP, WebP, TIFF, PNM) before anything is decoded; other formats are checked after decoding
// (OpenCV's own 2^30-pixel guard still applies first). max_pixels <= 0 disables the limit.
constexpr int64_t kDefaultMaxImagePixels = int64_t{2} * 89478485;

// The (width, height) a header declares, for the formats listed above; {0, 0} when the format is
// not one of them or the header is too short or malformed to tell (the decoder then decides).
std::pair<int64_t, int64_t> peek_dimensions(const uint8_t* data, std::size_t size);

// Throw ImageError naming the file (or "<memory>") on unreadable, empty or non-image input, and
// on images with more than max_pixels pixels.
RgbImage decode_file(const std::string& path, int64_t max_pixels = kDefaultMaxImagePixels);
RgbImage decode_bytes(const uint8_t* data, std::size_t size, const std::string& name = "<memory>",
                      int64_t max_pixels = kDefaultMaxImagePixels);
// From an OpenCV matrix in OpenCV's convention: 1 channel grey, 3 channels BGR, 4 channels BGRA;
// CV_8U or CV_16U, 16-bit converted as PIL does for the same PNG/TIFF: grey clipped to 0..255
// (mode I), colour reduced to the most significant byte (rawmode RGB;16B). Else InvalidArgument.
RgbImage from_mat(const cv::Mat& mat);
// From a caller's interleaved RGB buffer with `stride_bytes` per row (0 = width * 3).
RgbImage from_rgb(const uint8_t* data, int width, int height, std::size_t stride_bytes = 0);

}  // namespace internvl::preprocess
