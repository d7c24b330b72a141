// InternViT against the official vision references of every fixture (data-driven).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "internvl/error.h"
#include "io/config.h"
#include "io/safetensors.h"
#include "io/state_dict.h"
#include "models/intern_vit.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;
using namespace internvl;
using internvl::testing::AllCloseToReference;

namespace {

io::VisionConfig vision_config_of(const std::string& fixture) {
  const auto json = io::read_config_json(internvl::testing::fixture_path(fixture));
  return io::parse_vision_config(json.at("vision_config"), fixture);
}

models::InternVisionModel load_vision(const std::string& fixture) {
  models::InternVisionModel model(vision_config_of(fixture), nn::ParamInit{});
  io::Checkpoint checkpoint(internvl::testing::fixture_path(fixture));
  io::LoadOptions options;
  options.prefix = "vision_model.";
  const auto report = io::load_state_dict(*model, checkpoint, options);
  EXPECT_FALSE(report.loaded.empty());
  return model;
}

// (input pixel_values, expected last_hidden_state) pairs a fixture provides.
struct VisionCase {
  std::string label;
  at::Tensor pixel_values;
  at::Tensor expected;
};

std::vector<VisionCase> vision_cases(const std::string& fixture) {
  using internvl::testing::reference_tensor;
  std::vector<VisionCase> cases;
  const auto ref = internvl::testing::fixture_reference(fixture);
  const auto& inputs = ref.at("inputs");
  if (inputs.contains("vision_state_images")) {
    // Retrieval fixture: rows of pixel_values for the listed images.
    std::vector<std::string> order;
    for (const auto& image : inputs.at("images")) order.push_back(image.at("file").get<std::string>());
    const auto all_pixels = reference_tensor(fixture, "pixel_values");
    const auto expected = reference_tensor(fixture, "vision.last_hidden_state");
    int64_t row = 0;
    for (const auto& name : inputs.at("vision_state_images")) {
      const auto index = std::find(order.begin(), order.end(), name.get<std::string>()) - order.begin();
      cases.push_back({name.get<std::string>(), all_pixels.slice(0, index, index + 1), expected.slice(0, row, row + 1)});
      ++row;
    }
  }
  if (inputs.contains("conversations") && internvl::testing::has_reference_tensor(fixture, "conv_image.vision_last_hidden_state")) {
    const std::string image = inputs.at("conversations").at(0).at("image").get<std::string>();
    cases.push_back({image, internvl::testing::reference_pixel_values(fixture, image),
                     reference_tensor(fixture, "conv_image.vision_last_hidden_state")});
  }
  return cases;
}

class InternViTReference : public ::testing::TestWithParam<std::string> {};

TEST_P(InternViTReference, LastHiddenStateMatchesOfficial) {
  const auto fixture = GetParam();
  auto model = load_vision(fixture);
  const auto cases = vision_cases(fixture);
  ASSERT_FALSE(cases.empty()) << fixture << " has no vision reference";
  at::NoGradGuard no_grad;
  for (const auto& c : cases) {
    const auto out = model->forward(c.pixel_values);
    EXPECT_TRUE(AllCloseToReference(out.last_hidden_state, c.expected)) << fixture << " " << c.label;
    EXPECT_TRUE(at::equal(out.pooled, out.last_hidden_state.select(1, 0)));
    // The ATen path forced must agree bit for bit on CPU (there is no other path on CPU).
    model->set_force_aten(true);
    EXPECT_TRUE(at::equal(model->forward(c.pixel_values).last_hidden_state, out.last_hidden_state));
    model->set_force_aten(false);
  }
}

TEST_P(InternViTReference, HiddenStateIndexingFollowsOfficialList) {
  const auto fixture = GetParam();
  auto model = load_vision(fixture);
  const auto c = vision_cases(fixture).at(0);
  const int layers = model->config().num_hidden_layers;
  at::NoGradGuard no_grad;
  EXPECT_TRUE(at::equal(model->hidden_state(c.pixel_values, -1), model->hidden_state(c.pixel_values, layers)));
  EXPECT_TRUE(at::equal(model->hidden_state(c.pixel_values, 0), model->embeddings->forward(c.pixel_values)));
  if (layers >= 2) {
    // Layer L-1 output differs from the last: each layer changes the residual stream.
    EXPECT_FALSE(at::allclose(model->hidden_state(c.pixel_values, -2), model->hidden_state(c.pixel_values, -1)));
  }
  EXPECT_THROW(model->hidden_state(c.pixel_values, layers + 1), InvalidArgument);
  EXPECT_THROW(model->hidden_state(c.pixel_values, -(layers + 2)), InvalidArgument);
}

TEST_P(InternViTReference, RejectsBadPixelShapes) {
  const auto fixture = GetParam();
  auto model = load_vision(fixture);
  const auto& config = model->config();
  at::NoGradGuard no_grad;
  EXPECT_THROW(model->forward(at::zeros({1, 1, config.image_size, config.image_size})), InvalidArgument);
  EXPECT_THROW(model->forward(at::zeros({1, 3, config.image_size + 1, config.image_size})), InvalidArgument);
  EXPECT_THROW(model->forward(at::zeros({3, config.image_size, config.image_size})), InvalidArgument);
}

TEST_P(InternViTReference, PositionEmbeddingInterpolation) {
  const auto fixture = GetParam();
  auto model = load_vision(fixture);
  const auto& config = model->config();
  const int64_t g = config.grid_size();
  at::NoGradGuard no_grad;
  // The trained grid is returned unchanged.
  EXPECT_TRUE(at::equal(model->embeddings->position_embedding_for(g, g, at::kFloat),
                        model->embeddings->position_embedding));
  // A smaller input uses a resized grid: CLS row kept, one row per patch, values within the
  // range bicubic overshoot allows.
  const int64_t h = std::max<int64_t>(1, g / 2), w = std::max<int64_t>(1, g - 1);
  const auto resized = model->embeddings->position_embedding_for(h, w, at::kFloat);
  ASSERT_EQ(resized.sizes(), (std::vector<int64_t>{1, 1 + h * w, config.hidden_size}));
  EXPECT_TRUE(at::equal(resized.slice(1, 0, 1), model->embeddings->position_embedding.slice(1, 0, 1)));
  const auto out = model->forward(at::randn({2, 3, h * config.patch_size, w * config.patch_size}));
  EXPECT_EQ(out.last_hidden_state.sizes(), (std::vector<int64_t>{2, 1 + h * w, config.hidden_size}));
  EXPECT_TRUE(at::isfinite(out.last_hidden_state).all().item<bool>());
}

TEST_P(InternViTReference, BFloat16CloseToFloat32) {
  const auto fixture = GetParam();
  auto reference = load_vision(fixture);
  models::InternVisionModel bf16(vision_config_of(fixture), nn::ParamInit{at::kBFloat16, at::kCPU});
  io::LoadOptions options;
  options.prefix = "vision_model.";
  options.dtype = at::kBFloat16;
  io::load_state_dict(*bf16, io::Checkpoint(internvl::testing::fixture_path(fixture)), options);
  const auto c = vision_cases(fixture).at(0);
  at::NoGradGuard no_grad;
  const auto expected = reference->forward(c.pixel_values).last_hidden_state;
  const auto actual = bf16->forward(c.pixel_values).last_hidden_state.to(at::kFloat);
  EXPECT_EQ(bf16->embeddings->patch_weight.scalar_type(), at::kBFloat16);
  const double rel = ((actual - expected).norm() / expected.norm()).item<double>();
  const double cosine = at::cosine_similarity(actual.flatten(), expected.flatten(), 0).item<double>();
  EXPECT_LT(rel, 3e-2) << fixture;
  EXPECT_GT(cosine, 0.999) << fixture;
}

std::vector<std::string> fixtures_with_vision() {
  auto out = internvl::testing::fixtures_with_architecture("InternVLModel");
  for (const auto& f : internvl::testing::fixtures_with_architecture("InternVLChatModel")) out.push_back(f);
  return out;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, InternViTReference, ::testing::ValuesIn(fixtures_with_vision()),
                         internvl::testing::FixtureName());
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(InternViTReference);

}  // namespace
