// Resize and transforms against the official pipelines' reference tensors (Pillow 9.4 +
// torchvision 0.14): retrieval/classification pixels of InternVLModel fixtures, dynamic tiling of
// InternVLChatModel fixtures. Everything (images, sizes, grids, tile counts) is read from the
// fixtures' config.json / reference.json.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "internvl/error.h"
#include "preprocess/image.h"
#include "preprocess/resize.h"
#include "preprocess/transforms.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;
using internvl::InvalidArgument;
namespace p = internvl::preprocess;
namespace t = internvl::testing;

namespace {

std::string image_path(const std::string& file) { return (fs::path(t::images_dir()) / file).string(); }

// Bit-exact float equality, reporting the largest difference.
::testing::AssertionResult ExactlyEqual(const at::Tensor& actual, const at::Tensor& expected) {
  if (actual.sizes() != expected.sizes()) {
    return ::testing::AssertionFailure() << "shape " << actual.sizes() << " != expected " << expected.sizes();
  }
  if (at::equal(actual, expected.to(actual.scalar_type()))) return ::testing::AssertionSuccess();
  const auto diff = (actual.to(at::kDouble) - expected.to(at::kDouble)).abs();
  return ::testing::AssertionFailure() << (diff > 0).sum().item<int64_t>() << " of " << diff.numel()
                                       << " values differ, max |diff| " << diff.max().item<double>();
}

p::RgbImage random_image(int width, int height, uint32_t seed) {
  p::RgbImage image;
  image.width = width;
  image.height = height;
  image.pixels.resize(static_cast<std::size_t>(width) * height * 3);
  std::mt19937 rng(seed);
  for (auto& v : image.pixels) v = static_cast<uint8_t>(rng());
  return image;
}

p::RgbImage constant_image(int width, int height, uint8_t r, uint8_t g, uint8_t b) {
  p::RgbImage image;
  image.width = width;
  image.height = height;
  image.pixels.resize(static_cast<std::size_t>(width) * height * 3);
  for (std::size_t i = 0; i < image.pixels.size(); i += 3) {
    image.pixels[i] = r;
    image.pixels[i + 1] = g;
    image.pixels[i + 2] = b;
  }
  return image;
}

template <typename T>
T json_or(const nlohmann::json& object, const char* key, T fallback) {
  return object.contains(key) && !object[key].is_null() ? object[key].get<T>() : fallback;
}

// load_image parameters of a chat fixture: what reference.json says the references were made
// with (`preprocessing`), else config.json.
p::TilingOptions tiling_options(const std::string& fixture) {
  const auto config = t::fixture_config(fixture);
  const auto reference = t::fixture_reference(fixture);
  p::TilingOptions options;
  const int vision_size = config.contains("vision_config") ? json_or(config["vision_config"], "image_size", 448) : 448;
  options.tile_size = json_or(config, "force_image_size", vision_size);
  options.min_tiles = json_or(config, "min_dynamic_patch", 1);
  options.max_tiles = json_or(config, "max_dynamic_patch", 12);
  options.use_thumbnail = json_or(config, "use_thumbnail", false);
  if (reference.contains("preprocessing")) {
    const auto& pre = reference["preprocessing"];
    options.tile_size = json_or(pre, "input_size", options.tile_size);
    options.min_tiles = json_or(pre, "min_num", 1);  // load_image leaves dynamic_preprocess's min_num = 1
    options.max_tiles = json_or(pre, "max_num", options.max_tiles);
    options.use_thumbnail = json_or(pre, "use_thumbnail", options.use_thumbnail);
  }
  return options;
}

}  // namespace

// ---- resize properties ----------------------------------------------------------------------

TEST(Resize, SameSizeIsIdentity) {
  for (auto [w, h] : {std::pair{1, 1}, std::pair{5, 7}, std::pair{64, 33}}) {
    const auto image = random_image(w, h, 11u * w + h);
    const auto out = p::resize_bicubic(image, w, h);
    EXPECT_EQ(out.width, w);
    EXPECT_EQ(out.height, h);
    EXPECT_EQ(out.pixels, image.pixels);
  }
}

TEST(Resize, ConstantImageStaysConstant) {
  const std::vector<std::pair<int, int>> inputs = {{1, 1}, {5, 7}, {37, 500}, {900, 60}, {640, 480}};
  const std::vector<std::pair<int, int>> outputs = {{1, 1}, {3, 2}, {224, 224}, {448, 896}, {13, 1000}, {1000, 13}};
  for (const auto& [iw, ih] : inputs) {
    for (uint8_t value : {uint8_t{0}, uint8_t{1}, uint8_t{128}, uint8_t{254}, uint8_t{255}}) {
      const auto image = constant_image(iw, ih, value, static_cast<uint8_t>(255 - value), 77);
      for (const auto& [ow, oh] : outputs) {
        const auto out = p::resize_bicubic(image, ow, oh);
        ASSERT_EQ(out.width, ow);
        ASSERT_EQ(out.height, oh);
        for (std::size_t i = 0; i < out.pixels.size(); i += 3) {
          ASSERT_TRUE(out.pixels[i] == value && out.pixels[i + 1] == 255 - value && out.pixels[i + 2] == 77)
              << iw << "x" << ih << " -> " << ow << "x" << oh << " value " << int(value) << " at " << i / 3;
        }
      }
    }
  }
}

// Horizontal pass first, through an 8-bit image: resizing width then height in two calls is the
// same computation as one call.
TEST(Resize, TwoPassStructure) {
  const auto image = random_image(97, 61, 5);
  for (auto [ow, oh] : {std::pair{40, 25}, std::pair{200, 150}, std::pair{30, 170}}) {
    const auto both = p::resize_bicubic(image, ow, oh);
    const auto split = p::resize_bicubic(p::resize_bicubic(image, ow, image.height), ow, oh);
    EXPECT_EQ(both.pixels, split.pixels) << ow << "x" << oh;
  }
}

TEST(Resize, RejectsBadSizes) {
  const auto image = random_image(8, 8, 1);
  EXPECT_THROW(p::resize_bicubic(image, 0, 8), InvalidArgument);
  EXPECT_THROW(p::resize_bicubic(image, 8, 0), InvalidArgument);
  EXPECT_THROW(p::resize_bicubic(image, -3, 8), InvalidArgument);
  EXPECT_THROW(p::resize_bicubic(p::RgbImage{}, 8, 8), InvalidArgument);
  EXPECT_THROW(p::retrieval_transform(image, 0), InvalidArgument);
  EXPECT_THROW(p::classification_transform(image, 0), InvalidArgument);
  p::RgbImage inconsistent = image;
  inconsistent.pixels.pop_back();
  EXPECT_THROW(p::resize_bicubic(inconsistent, 4, 4), InvalidArgument);
}

// ---- retrieval / classification (InternVLModel fixtures) -------------------------------------

TEST(RetrievalTransform, MatchesReferencePixels) {
  const auto fixtures = t::fixtures_with_architecture("InternVLModel");
  if (fixtures.empty()) GTEST_SKIP() << "no InternVLModel fixture";
  for (const auto& fixture : fixtures) {
    SCOPED_TRACE(fixture);
    const auto config = t::fixture_config(fixture);
    const auto reference = t::fixture_reference(fixture);
    const int size = config.at("vision_config").at("image_size").get<int>();
    const auto& images = reference.at("inputs").at("images");
    ASSERT_FALSE(images.empty());
    const at::Tensor expected_u8 = t::reference_tensor(fixture, "pixel_values_u8");
    const bool has_float = t::has_reference_tensor(fixture, "pixel_values");
    const at::Tensor expected = has_float ? t::reference_tensor(fixture, "pixel_values") : at::Tensor();
    ASSERT_EQ(expected_u8.size(0), static_cast<int64_t>(images.size()));
    for (std::size_t i = 0; i < images.size(); ++i) {
      const std::string file = images[i].at("file");
      SCOPED_TRACE(file);
      const auto decoded = p::decode_file(image_path(file));
      if (images[i].contains("size_wh")) {
        EXPECT_EQ(decoded.width, images[i]["size_wh"][0].get<int>());
        EXPECT_EQ(decoded.height, images[i]["size_wh"][1].get<int>());
      }
      const std::vector<p::RgbImage> batch{p::retrieval_transform(decoded, size)};
      EXPECT_TRUE(t::TensorsEqual(p::to_uint8_chw(batch), expected_u8.narrow(0, static_cast<int64_t>(i), 1)));
      if (has_float) {
        EXPECT_TRUE(ExactlyEqual(p::normalize_imagenet(batch), expected.narrow(0, static_cast<int64_t>(i), 1)));
      }
    }
  }
}

TEST(ClassificationTransform, MatchesReferencePixels) {
  int checked = 0;
  for (const auto& fixture : t::fixtures_with_architecture("InternVLModel")) {
    SCOPED_TRACE(fixture);
    const auto config = t::fixture_config(fixture);
    const auto reference = t::fixture_reference(fixture);
    const auto& inputs = reference.at("inputs");
    if (!inputs.contains("classification_images") ||
        !t::has_reference_tensor(fixture, "classification.pixel_values_u8")) {
      continue;
    }
    const int size = config.at("vision_config").at("image_size").get<int>();
    std::vector<p::RgbImage> batch;
    for (const auto& file : inputs["classification_images"]) {
      batch.push_back(p::classification_transform(p::decode_file(image_path(file.get<std::string>())), size));
      EXPECT_EQ(batch.back().width, size);
      EXPECT_EQ(batch.back().height, size);
    }
    ASSERT_FALSE(batch.empty());
    EXPECT_TRUE(t::TensorsEqual(p::to_uint8_chw(batch), t::reference_tensor(fixture, "classification.pixel_values_u8")));
    if (t::has_reference_tensor(fixture, "classification.pixel_values")) {
      EXPECT_TRUE(ExactlyEqual(p::normalize_imagenet(batch), t::reference_tensor(fixture, "classification.pixel_values")));
    }
    ++checked;
  }
  if (checked == 0) GTEST_SKIP() << "no classification references";
}

// ---- dynamic tiling (InternVLChatModel fixtures) ---------------------------------------------

TEST(DynamicTiles, MatchesReference) {
  const auto fixtures = t::fixtures_with_architecture("InternVLChatModel");
  if (fixtures.empty()) GTEST_SKIP() << "no InternVLChatModel fixture";
  for (const auto& fixture : fixtures) {
    SCOPED_TRACE(fixture);
    const auto reference = t::fixture_reference(fixture);
    const p::TilingOptions options = tiling_options(fixture);
    const int stride =
        reference.contains("preprocessing") ? json_or(reference["preprocessing"], "tile_samples_stride", 32) : 32;
    const auto& images = reference.at("inputs").at("images");
    ASSERT_FALSE(images.empty());
    for (const auto& entry : images) {
      const std::string file = entry.at("file");
      SCOPED_TRACE(file);
      const auto decoded = p::decode_file(image_path(file));
      const p::Tiles tiles = p::dynamic_tiles(decoded, options);
      if (entry.contains("grid_cols_rows")) {
        EXPECT_EQ(tiles.grid.cols, entry["grid_cols_rows"][0].get<int>());
        EXPECT_EQ(tiles.grid.rows, entry["grid_cols_rows"][1].get<int>());
      }
      const int64_t n_tiles = static_cast<int64_t>(tiles.tiles.size());
      if (entry.contains("n_tiles")) EXPECT_EQ(n_tiles, entry["n_tiles"].get<int64_t>());
      if (entry.contains("has_thumbnail")) {
        EXPECT_EQ(n_tiles == static_cast<int64_t>(tiles.grid.cols) * tiles.grid.rows + 1,
                  entry["has_thumbnail"].get<bool>());
      }
      for (const auto& tile : tiles.tiles) {
        ASSERT_EQ(tile.width, options.tile_size);
        ASSERT_EQ(tile.height, options.tile_size);
      }

      const std::string prefix = "images." + file + ".";
      if (t::has_reference_tensor(fixture, prefix + "pixel_values_u8")) {
        EXPECT_TRUE(t::TensorsEqual(p::to_uint8_chw(tiles.tiles), t::reference_tensor(fixture, prefix + "pixel_values_u8")))
            << "pixel_values_u8";
      }
      const at::Tensor pixels = p::normalize_imagenet(tiles.tiles);  // [N, 3, S, S]
      ASSERT_TRUE(pixels.is_contiguous());
      ASSERT_EQ(pixels.scalar_type(), at::kFloat);
      if (t::has_reference_tensor(fixture, prefix + "pixel_values")) {
        EXPECT_TRUE(ExactlyEqual(pixels, t::reference_tensor(fixture, prefix + "pixel_values"))) << "pixel_values";
      }
      const at::Tensor as_double = pixels.to(at::kDouble);
      if (t::has_reference_tensor(fixture, prefix + "tile_mean")) {
        const at::Tensor mean = as_double.mean({2, 3}).to(at::kFloat);
        EXPECT_TRUE(t::AllCloseToReference(mean, t::reference_tensor(fixture, prefix + "tile_mean"))) << "tile_mean";
      }
      if (t::has_reference_tensor(fixture, prefix + "tile_std")) {
        const at::Tensor centered = as_double - as_double.mean({2, 3}, /*keepdim=*/true);
        const at::Tensor std = centered.pow(2).mean({2, 3}).sqrt().to(at::kFloat);  // population std
        EXPECT_TRUE(t::AllCloseToReference(std, t::reference_tensor(fixture, prefix + "tile_std"))) << "tile_std";
      }
      if (t::has_reference_tensor(fixture, prefix + "tile_samples")) {
        const at::Tensor samples = pixels.slice(2, 0, pixels.size(2), stride).slice(3, 0, pixels.size(3), stride);
        EXPECT_TRUE(ExactlyEqual(samples.contiguous(), t::reference_tensor(fixture, prefix + "tile_samples")))
            << "tile_samples";
      }
    }
  }
}

TEST(DynamicTiles, TilesReassembleTheResizedImage) {
  const auto image = random_image(301, 173, 3);
  p::TilingOptions options;
  options.tile_size = 32;
  options.max_tiles = 6;
  options.use_thumbnail = true;
  const auto tiles = p::dynamic_tiles(image, options);
  const int cols = tiles.grid.cols, rows = tiles.grid.rows;
  ASSERT_GT(cols * rows, 1);
  ASSERT_EQ(tiles.tiles.size(), static_cast<std::size_t>(cols * rows + 1));
  const auto resized = p::resize_bicubic(image, 32 * cols, 32 * rows);
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < cols; ++c) {
      const auto& tile = tiles.tiles[static_cast<std::size_t>(r * cols + c)];
      for (int y = 0; y < 32; ++y) {
        ASSERT_EQ(0, std::memcmp(tile.row(y), resized.row(r * 32 + y) + static_cast<std::size_t>(c) * 32 * 3, 32 * 3))
            << "tile " << r << "," << c << " row " << y;
      }
    }
  }
  EXPECT_EQ(tiles.tiles.back().pixels, p::resize_bicubic(image, 32, 32).pixels);  // thumbnail last
  options.use_thumbnail = false;
  EXPECT_EQ(p::dynamic_tiles(image, options).tiles.size(), static_cast<std::size_t>(cols * rows));
}

// The official README's examples of find_closest_aspect_ratio (448-pixel tiles).
TEST(FindClosestGrid, ReadmeExamplesAndTieBreak) {
  auto grid = p::find_closest_grid(1000, 1000, 1, 6, 448);  // exact tie 1x1 vs 2x2: large image -> 2x2
  EXPECT_EQ(grid.cols, 2);
  EXPECT_EQ(grid.rows, 2);
  grid = p::find_closest_grid(300, 300, 1, 6, 448);  // small square image keeps 1x1
  EXPECT_EQ(grid.cols, 1);
  EXPECT_EQ(grid.rows, 1);
  grid = p::find_closest_grid(600, 500, 1, 6, 448);
  EXPECT_EQ(grid.cols, 1);
  EXPECT_EQ(grid.rows, 1);
  grid = p::find_closest_grid(889, 500, 1, 6, 448);
  EXPECT_EQ(grid.cols, 2);
  EXPECT_EQ(grid.rows, 1);
  grid = p::find_closest_grid(10, 1000, 1, 6, 448);
  EXPECT_EQ(grid.cols, 1);
  EXPECT_EQ(grid.rows, 6);
  grid = p::find_closest_grid(1000, 1000, 1, 1, 448);
  EXPECT_EQ(grid.cols * grid.rows, 1);
}

TEST(FindClosestGrid, RejectsBadArguments) {
  EXPECT_THROW(p::find_closest_grid(0, 10, 1, 6, 448), InvalidArgument);
  EXPECT_THROW(p::find_closest_grid(10, 10, 0, 6, 448), InvalidArgument);
  EXPECT_THROW(p::find_closest_grid(10, 10, 4, 2, 448), InvalidArgument);
  EXPECT_THROW(p::find_closest_grid(10, 10, 1, 6, 0), InvalidArgument);
}

// ---- tensor conversion ----------------------------------------------------------------------

TEST(ToTensor, LayoutAndNormalisation) {
  const auto a = random_image(5, 4, 1);
  const auto b = random_image(5, 4, 2);
  const at::Tensor u8 = p::to_uint8_chw({a, b});
  ASSERT_EQ(u8.sizes(), (at::IntArrayRef{2, 3, 4, 5}));
  ASSERT_EQ(u8.scalar_type(), at::kByte);
  const float mean[3] = {0.485f, 0.456f, 0.406f};
  const float stdev[3] = {0.229f, 0.224f, 0.225f};
  const at::Tensor f = p::normalize_imagenet({a, b});
  ASSERT_EQ(f.sizes(), u8.sizes());
  ASSERT_EQ(f.scalar_type(), at::kFloat);
  ASSERT_TRUE(f.is_contiguous());
  const auto u8a = u8.accessor<uint8_t, 4>();
  const auto fa = f.accessor<float, 4>();
  for (int y = 0; y < 4; ++y) {
    for (int x = 0; x < 5; ++x) {
      for (int c = 0; c < 3; ++c) {
        const uint8_t v = b.row(y)[3 * x + c];
        EXPECT_EQ(u8a[1][c][y][x], v);
        EXPECT_EQ(fa[1][c][y][x], (static_cast<float>(v) / 255.0f - mean[c]) / stdev[c]);
      }
    }
  }
}

TEST(ToTensor, RejectsEmptyAndMismatchedBatches) {
  EXPECT_THROW(p::to_uint8_chw({}), InvalidArgument);
  EXPECT_THROW(p::normalize_imagenet({}), InvalidArgument);
  const std::vector<p::RgbImage> mixed{random_image(4, 4, 1), random_image(4, 5, 2)};
  EXPECT_THROW(p::to_uint8_chw(mixed), InvalidArgument);
  EXPECT_THROW(p::normalize_imagenet(mixed), InvalidArgument);
  EXPECT_THROW(p::to_uint8_chw({p::RgbImage{}}), InvalidArgument);
}
