// InternVL-C / InternVL-G against every reference of every InternVLModel fixture (data-driven).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "internvl/error.h"
#include "io/config.h"
#include "io/safetensors.h"
#include "io/state_dict.h"
#include "models/internvl_clip.h"
#include "support/fixtures.h"

using namespace internvl;
using internvl::testing::AllCloseToReference;
using internvl::testing::reference_tensor;

namespace {

struct Loaded {
  models::InternVLClip model{nullptr};
  io::LoadReport report;
};

Loaded load_clip(const std::string& fixture) {
  const auto json = io::read_config_json(internvl::testing::fixture_path(fixture));
  Loaded out;
  out.model = models::InternVLClip(io::parse_internvl_config(json, fixture), nn::ParamInit{});
  out.report = io::load_state_dict(*out.model, io::Checkpoint(internvl::testing::fixture_path(fixture)));
  out.model->eval();
  return out;
}

class InternVLClipReference : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { loaded_ = load_clip(GetParam()); }
  Loaded loaded_;
  at::NoGradGuard no_grad_;
};

TEST_P(InternVLClipReference, OnlyUnusedHeadsStayUnused) {
  // lm_head and itm_head are not used by InternVL-C/G; everything else must bind.
  for (const auto& name : loaded_.report.unused) {
    EXPECT_TRUE(name.rfind("qllama.lm_head.", 0) == 0 || name.rfind("itm_head.", 0) == 0) << name;
  }
  EXPECT_FLOAT_EQ(loaded_.model->logit_scale.item<float>(), reference_tensor(GetParam(), "logit_scale").item<float>());
}

TEST_P(InternVLClipReference, ImageEmbeddingsMatchOfficial) {
  const auto fixture = GetParam();
  const auto pixels = reference_tensor(fixture, "pixel_values");
  const auto vision = loaded_.model->vision_model->forward(pixels).last_hidden_state;
  const auto c = loaded_.model->encode_vision_features(vision, models::ClipMode::kC);
  EXPECT_TRUE(AllCloseToReference(c, reference_tensor(fixture, "c.image_embeds")));
  const auto g = loaded_.model->encode_vision_features(vision, models::ClipMode::kG);
  EXPECT_TRUE(AllCloseToReference(g, reference_tensor(fixture, "g.image_embeds")));
  // One image at a time gives the same rows as the batch.
  EXPECT_TRUE(AllCloseToReference(loaded_.model->encode_image(pixels.slice(0, 1, 2), models::ClipMode::kG),
                                  g.slice(0, 1, 2)));
}

TEST_P(InternVLClipReference, QueryHiddenStateMatchesOfficial) {
  const auto fixture = GetParam();
  const auto ref = internvl::testing::fixture_reference(fixture);
  std::vector<std::string> order;
  for (const auto& image : ref.at("inputs").at("images")) order.push_back(image.at("file").get<std::string>());
  const auto pixels = reference_tensor(fixture, "pixel_values");
  std::vector<int64_t> rows;
  for (const auto& name : ref.at("inputs").at("vision_state_images")) {
    rows.push_back(std::find(order.begin(), order.end(), name.get<std::string>()) - order.begin());
  }
  const auto selected = pixels.index_select(0, at::tensor(rows, at::kLong));
  const auto vision = loaded_.model->vision_model->forward(selected).last_hidden_state;
  EXPECT_TRUE(AllCloseToReference(loaded_.model->query_hidden_state(vision),
                                  reference_tensor(fixture, "g.query_hidden_state")));
}

TEST_P(InternVLClipReference, TextEmbeddingsAndHiddenStatesMatchOfficial) {
  const auto fixture = GetParam();
  const auto ids = reference_tensor(fixture, "input_ids");
  const auto text = loaded_.model->encode_text(ids);
  EXPECT_TRUE(AllCloseToReference(text, reference_tensor(fixture, "c.text_embeds")));
  EXPECT_TRUE(AllCloseToReference(text, reference_tensor(fixture, "g.text_embeds")));
  // Every position, padding rows included, as the official masked computation gives them.
  const auto hidden = loaded_.model->qllama_model->forward_text(ids, ids > 0);
  EXPECT_TRUE(AllCloseToReference(hidden, reference_tensor(fixture, "text.hidden_state")));
  // Extra trailing padding changes nothing.
  const auto padded = at::cat({ids, at::zeros({ids.size(0), 7}, ids.options())}, 1);
  EXPECT_TRUE(at::allclose(loaded_.model->encode_text(padded), text, 1e-6, 1e-6));
}

TEST_P(InternVLClipReference, LogitsPerImageMatchOfficial) {
  const auto fixture = GetParam();
  const auto pixels = reference_tensor(fixture, "pixel_values");
  const auto text = loaded_.model->encode_text(reference_tensor(fixture, "input_ids"));
  const auto vision = loaded_.model->vision_model->forward(pixels).last_hidden_state;
  for (const auto mode : {models::ClipMode::kC, models::ClipMode::kG}) {
    const auto image = loaded_.model->encode_vision_features(vision, mode);
    const std::string name = mode == models::ClipMode::kC ? "c.logits_per_image" : "g.logits_per_image";
    EXPECT_TRUE(AllCloseToReference(loaded_.model->logits_per_image(image, text), reference_tensor(fixture, name)))
        << name;
  }
}

TEST_P(InternVLClipReference, RejectsBadText) {
  EXPECT_THROW(loaded_.model->encode_text(at::zeros({2, 5}, at::kLong)), InvalidArgument);  // all padding
  EXPECT_THROW(loaded_.model->encode_text(at::zeros({0, 5}, at::kLong)), InvalidArgument);
  const int64_t vocab = loaded_.model->config().qllama.vocab_size;
  EXPECT_THROW(loaded_.model->encode_text(at::full({1, 3}, vocab, at::kLong)), InvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, InternVLClipReference,
                         ::testing::ValuesIn(internvl::testing::fixtures_with_architecture("InternVLModel")),
                         internvl::testing::FixtureName());
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(InternVLClipReference);

}  // namespace
