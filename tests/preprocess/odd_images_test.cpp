// Odd but legal images and hostile headers: decompression bombs refused from the header (with a
// configurable limit), header dimensions per format, CMYK JPEG, animated GIF, 1x1 images. The
// odd images and Pillow's convert('RGB') of each are in tests/data/images (make_images.py).
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <string>
#include <vector>

#include "fixtures_dir.h"
#include "internvl/error.h"
#include "preprocess/image.h"
#include "preprocess/transforms.h"

using internvl::ImageError;
namespace p = internvl::preprocess;

namespace {

const std::string kDir = std::string(INTERNVL_TEST_DATA_DIR) + "/images/";

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

nlohmann::json odd_images() { return nlohmann::json::parse(std::ifstream(kDir + "images.json")); }

// Largest per-sample difference between our decode and Pillow's (-1 on a size mismatch).
int max_difference(const std::string& file) {
  const auto bytes = read_bytes(kDir + file);
  const auto ours = p::decode_bytes(bytes.data(), bytes.size(), file);
  const auto pillow = read_bytes(kDir + file + ".rgb");
  const auto meta = odd_images().at(file);
  if (ours.width != meta.at("width").get<int>() || ours.height != meta.at("height").get<int>() ||
      ours.pixels.size() != pillow.size()) {
    return -1;
  }
  int worst = 0;
  for (std::size_t i = 0; i < pillow.size(); ++i) worst = std::max(worst, std::abs(ours.pixels[i] - pillow[i]));
  return worst;
}

std::vector<uint8_t> encode(const std::string& ext, int width, int height) {
  cv::Mat mat(height, width, CV_8UC3, cv::Scalar(10, 120, 230));
  std::vector<uint8_t> out;
  EXPECT_TRUE(cv::imencode(ext, mat, out)) << ext;
  return out;
}

template <typename Fn>
::testing::AssertionResult RefusedAsTooLarge(Fn&& fn) {
  try {
    fn();
  } catch (const ImageError& e) {
    const std::string what = e.what();
    if (what.find("too large") == std::string::npos) return ::testing::AssertionFailure() << what;
    return ::testing::AssertionSuccess() << what;
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "wrong exception: " << e.what();
  }
  return ::testing::AssertionFailure() << "not refused";
}

void put_be32(std::vector<uint8_t>& bytes, std::size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) bytes[at + i] = static_cast<uint8_t>(v >> (24 - 8 * i));
}

}  // namespace

// The header dimensions agree with the encoded size for every format we peek into.
TEST(PeekDimensions, MatchesEncodedSizeForEveryFormat) {
  int checked = 0;
  for (const std::string ext : {".png", ".jpg", ".bmp", ".webp", ".tiff", ".ppm", ".pgm"}) {
    std::vector<uint8_t> bytes;
    cv::Mat mat(37, 53, CV_8UC3, cv::Scalar(1, 2, 3));
    try {
      if (!cv::imencode(ext, mat, bytes)) continue;  // codec not built into this OpenCV
    } catch (const cv::Exception&) {
      continue;
    }
    SCOPED_TRACE(ext);
    const auto [w, h] = p::peek_dimensions(bytes.data(), bytes.size());
    EXPECT_EQ(w, 53);
    EXPECT_EQ(h, 37);
    ++checked;
  }
  EXPECT_GE(checked, 3);
  const auto images = odd_images();  // items() must not outlive the json it iterates
  for (const auto& [file, meta] : images.items()) {
    SCOPED_TRACE(file);
    const auto bytes = read_bytes(kDir + file);
    const auto [w, h] = p::peek_dimensions(bytes.data(), bytes.size());
    EXPECT_EQ(w, meta.at("width").get<int>());
    EXPECT_EQ(h, meta.at("height").get<int>());
  }
  const std::string text = "not an image";
  EXPECT_EQ(p::peek_dimensions(reinterpret_cast<const uint8_t*>(text.data()), text.size()),
            (std::pair<int64_t, int64_t>{0, 0}));
}

// A PNG / JPEG whose header announces 60000 x 60000 pixels (3.6 G) and has no pixel data: the
// header check refuses it as too large; without it the decoder would only see a broken file.
TEST(DecompressionBomb, HugeHeaderIsRefusedBeforeDecoding) {
  auto png = encode(".png", 4, 3);
  ASSERT_GE(png.size(), 33u);
  put_be32(png, 16, 60000);
  put_be32(png, 20, 60000);
  png.resize(33);  // signature + IHDR only
  EXPECT_TRUE(RefusedAsTooLarge([&] { p::decode_bytes(png.data(), png.size(), "bomb.png"); }));

  auto jpeg = encode(".jpg", 4, 3);
  const auto [w, h] = p::peek_dimensions(jpeg.data(), jpeg.size());
  ASSERT_EQ(w, 4);
  ASSERT_EQ(h, 3);
  // Find the SOF0 marker and patch its height and width.
  for (std::size_t i = 2; i + 9 < jpeg.size(); ++i) {
    if (jpeg[i] == 0xFF && jpeg[i + 1] == 0xC0) {
      jpeg[i + 5] = jpeg[i + 7] = 0xEA;  // 0xEA60 = 60000
      jpeg[i + 6] = jpeg[i + 8] = 0x60;
      break;
    }
  }
  EXPECT_EQ(p::peek_dimensions(jpeg.data(), jpeg.size()), (std::pair<int64_t, int64_t>{60000, 60000}));
  EXPECT_TRUE(RefusedAsTooLarge([&] { p::decode_bytes(jpeg.data(), jpeg.size(), "bomb.jpg"); }));
}

// The limit is configurable: exactly at the limit decodes, one pixel over is refused, <= 0 lifts it.
TEST(DecompressionBomb, LimitIsConfigurable) {
  EXPECT_EQ(p::kDefaultMaxImagePixels, 2 * 89478485);  // Pillow's DecompressionBombError threshold
  for (const std::string ext : {".png", ".jpg", ".bmp"}) {
    SCOPED_TRACE(ext);
    const auto bytes = encode(ext, 13, 9);
    EXPECT_EQ(p::decode_bytes(bytes.data(), bytes.size(), "ok", 13 * 9).width, 13);
    EXPECT_TRUE(RefusedAsTooLarge([&] { p::decode_bytes(bytes.data(), bytes.size(), "x", 13 * 9 - 1); }));
    EXPECT_EQ(p::decode_bytes(bytes.data(), bytes.size(), "ok", 0).height, 9);
  }
  // GIF goes through giflib: the same limit.
  const auto gif = read_bytes(kDir + "animated_12x10.gif");
  EXPECT_TRUE(RefusedAsTooLarge([&] { p::decode_bytes(gif.data(), gif.size(), "x.gif", 119); }));
  EXPECT_EQ(p::decode_bytes(gif.data(), gif.size(), "x.gif", 120).width, 12);
}

// Adobe CMYK JPEG: decoded to RGB. libjpeg hands OpenCV inverted CMYK and OpenCV converts with
// k - ((255 - c) * k >> 8), Pillow with 255 - ... / 255 rounding: at most a couple of levels apart.
TEST(OddImages, CmykJpegIsCloseToPillow) {
  const int diff = max_difference("cmyk_24x16.jpg");
  ASSERT_GE(diff, 0) << "size mismatch";
  EXPECT_LE(diff, 2);
  RecordProperty("max_difference", diff);
}

// Animated GIF: the first frame, exactly as Pillow shows it before seek().
TEST(OddImages, AnimatedGifGivesTheFirstFrame) {
  ASSERT_GT(odd_images().at("animated_12x10.gif").at("frames").get<int>(), 1);
  EXPECT_EQ(max_difference("animated_12x10.gif"), 0);
}

// 1x1 images decode exactly and go through both transforms (a constant image stays constant).
TEST(OddImages, OnePixelImagesDecodeAndTransform) {
  for (const std::string file : {"one_pixel.png", "one_pixel.jpg"}) {
    SCOPED_TRACE(file);
    EXPECT_EQ(max_difference(file), 0);
    const auto bytes = read_bytes(kDir + file);
    const auto rgb = p::decode_bytes(bytes.data(), bytes.size(), file);
    const auto resized = p::retrieval_transform(rgb, 28);
    ASSERT_EQ(resized.width, 28);
    for (std::size_t i = 0; i < resized.pixels.size(); ++i) ASSERT_EQ(resized.pixels[i], rgb.pixels[i % 3]) << i;
    p::TilingOptions tiling;
    tiling.tile_size = 28;
    const auto tiles = p::dynamic_tiles(rgb, tiling);
    ASSERT_EQ(tiles.tiles.size(), 1u);  // square: one tile, no thumbnail
    EXPECT_EQ(p::normalize_imagenet(tiles.tiles).sizes(), (std::vector<int64_t>{1, 3, 28, 28}));
  }
}

// max_tiles has an upper bound (the grid list would otherwise exhaust memory).
TEST(OddImages, HugeMaxTilesIsInvalidArgument) {
  EXPECT_THROW(p::find_closest_grid(10, 10, 1, 2000000000, 448), internvl::InvalidArgument);
  EXPECT_NO_THROW(p::find_closest_grid(10, 10, 1, p::kMaxTiles, 448));
}
