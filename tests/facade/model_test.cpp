// The public facade: loading every fixture, info, preprocessing and vision features through it.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "internvl/internvl.h"
#include "internvl/torch.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;
using namespace internvl;

namespace {

TEST(Model, LoadsEveryFixtureAndDescribesIt) {
  const auto fixtures = internvl::testing::fixture_names();
  ASSERT_FALSE(fixtures.empty());
  for (const auto& fixture : fixtures) {
    SCOPED_TRACE(fixture);
    const auto config = internvl::testing::fixture_config(fixture);
    const auto model = Model::load(internvl::testing::fixture_path(fixture));
    const auto& info = model.info();
    EXPECT_EQ(info.architecture, config.at("architectures").at(0).get<std::string>());
    EXPECT_EQ(info.vision_hidden_size, config.at("vision_config").at("hidden_size").get<int>());
    EXPECT_EQ(info.vision_layers, config.at("vision_config").at("num_hidden_layers").get<int>());
    EXPECT_GT(info.num_parameters, 0u);
    for (const auto& name : info.unused_weights) EXPECT_NE(name.rfind("vision_model.", 0), 0u) << name;
  }
}

TEST(Model, VisionFeaturesThroughTheFacadeMatchReferences) {
  const auto fixtures = internvl::testing::fixtures_with_architecture("InternVLChatModel");
  if (fixtures.empty() && internvl::testing::fixtures_with_architecture("InternVLModel").empty()) {
    GTEST_SKIP() << "no fixture for this test under " << internvl::testing::fixtures_dir();
  }
  for (const auto& fixture : fixtures) {
    SCOPED_TRACE(fixture);
    const auto ref = internvl::testing::fixture_reference(fixture);
    const auto image = ref.at("inputs").at("conversations").at(0).at("image").get<std::string>();
    const auto model = Model::load(internvl::testing::fixture_path(fixture));
    const auto path = (fs::path(internvl::testing::images_dir()) / image).string();
    const auto pixels = torch_adapter::preprocess(model, Image::from_file(path));
    EXPECT_TRUE(internvl::testing::TensorsEqual(
        pixels.view(at::kInt), internvl::testing::reference_pixel_values(fixture, image).view(at::kInt)));
    // Same pixels from encoded bytes.
    std::ifstream in(path, std::ios::binary);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_TRUE(at::equal(torch_adapter::preprocess(model, Image::from_bytes(bytes, image)), pixels));
    const auto hidden = torch_adapter::vision_hidden_state(model, pixels);
    EXPECT_TRUE(internvl::testing::AllCloseToReference(
        hidden, internvl::testing::reference_tensor(fixture, "conv_image.vision_last_hidden_state")));
  }
  for (const auto& fixture : internvl::testing::fixtures_with_architecture("InternVLModel")) {
    SCOPED_TRACE(fixture);
    const auto ref = internvl::testing::fixture_reference(fixture);
    const auto model = Model::load(internvl::testing::fixture_path(fixture));
    const auto all = internvl::testing::reference_tensor(fixture, "pixel_values");
    int64_t row = 0;
    for (const auto& image : ref.at("inputs").at("images")) {
      const auto path = (fs::path(internvl::testing::images_dir()) / image.at("file").get<std::string>()).string();
      const auto pixels = torch_adapter::preprocess(model, Image::from_file(path));
      EXPECT_TRUE(at::equal(pixels, all.slice(0, row, row + 1))) << path;
      ++row;
    }
  }
}

TEST(Model, BadInputsAreTypedErrors) {
  EXPECT_THROW(Model::load("/nonexistent/model/dir"), ConfigError);
  const fs::path dir = fs::path(::testing::TempDir()) / "internvl_model_test";
  fs::create_directories(dir);
  EXPECT_THROW(Model::load(dir.string()), ConfigError);  // no config.json
  const auto fixtures = internvl::testing::fixture_names();
  ASSERT_FALSE(fixtures.empty());
  fs::copy_file(fs::path(internvl::testing::fixture_path(fixtures[0])) / "config.json", dir / "config.json",
                fs::copy_options::overwrite_existing);
  EXPECT_THROW(Model::load(dir.string()), CheckpointError);  // no weights
  LoadOptions bad_threads;
  bad_threads.num_threads = -1;
  EXPECT_THROW(Model::load(internvl::testing::fixture_path(fixtures[0]), bad_threads), InvalidArgument);
  if (!at::hasCUDA()) {
    LoadOptions cuda;
    cuda.device = Device::kCUDA;
    EXPECT_THROW(Model::load(internvl::testing::fixture_path(fixtures[0]), cuda), InvalidArgument);
  }
  fs::remove_all(dir);
  EXPECT_THROW(Image::from_rgb(nullptr, 2, 2), InvalidArgument);
  EXPECT_THROW(parse_dtype("int8"), InvalidArgument);
  EXPECT_THROW(parse_device("tpu"), InvalidArgument);
  EXPECT_EQ(parse_dtype("bf16"), DType::kBFloat16);
  EXPECT_EQ(parse_device("CUDA"), Device::kCUDA);
}

TEST(Model, ErrorsDeriveFromInternvlError) {
  try {
    Model::load("/nonexistent/model/dir");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/model/dir"), std::string::npos);
  }
}

}  // namespace
