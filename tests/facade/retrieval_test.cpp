// The retrieval facade (embed_image / embed_text / logits / index / retrieve / zero-shot) against
// the official references of every InternVLModel fixture.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "common/eigen_tensor.h"
#include "internvl/internvl.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;
using namespace internvl;
using internvl::testing::AllCloseToReference;
using internvl::testing::reference_tensor;

namespace {

class RetrievalFacade : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    fixture_ = GetParam();
    model_ = std::make_unique<Model>(Model::load(internvl::testing::fixture_path(fixture_)));
    const auto ref = internvl::testing::fixture_reference(fixture_);
    for (const auto& image : ref.at("inputs").at("images")) {
      images_.push_back(Image::from_file((fs::path(internvl::testing::images_dir()) / image.at("file").get<std::string>()).string()));
      image_names_.push_back(image.at("file").get<std::string>());
    }
    for (const auto& caption : ref.at("inputs").at("captions")) captions_.push_back(caption.at("text").get<std::string>());
  }
  std::string fixture_;
  std::unique_ptr<Model> model_;
  std::vector<Image> images_;
  std::vector<std::string> image_names_, captions_;
};

TEST_P(RetrievalFacade, EmbeddingsAndLogitsMatchOfficial) {
  EmbedOptions c;
  c.batch_size = 5;  // not a divisor of the image count: exercises a short last batch
  EmbedOptions g = c;
  g.mode = EmbedMode::kG;
  const auto image_c = model_->embed_image(images_, c);
  const auto image_g = model_->embed_image(images_, g);
  const auto text = model_->embed_text(captions_, c);
  EXPECT_TRUE(AllCloseToReference(to_tensor(image_c), reference_tensor(fixture_, "c.image_embeds")));
  EXPECT_TRUE(AllCloseToReference(to_tensor(image_g), reference_tensor(fixture_, "g.image_embeds")));
  EXPECT_TRUE(AllCloseToReference(to_tensor(text), reference_tensor(fixture_, "c.text_embeds")));
  EXPECT_TRUE(AllCloseToReference(to_tensor(model_->logits_per_image(image_c, text)),
                                  reference_tensor(fixture_, "c.logits_per_image")));
  EXPECT_TRUE(AllCloseToReference(to_tensor(model_->logits_per_image(image_g, text)),
                                  reference_tensor(fixture_, "g.logits_per_image")));
  EXPECT_NEAR(model_->logit_scale(), std::exp(reference_tensor(fixture_, "logit_scale").item<float>()), 1e-5);
  // normalize=true gives unit rows in the same directions.
  c.normalize = true;
  const auto unit = model_->embed_text(captions_, c);
  EXPECT_TRUE(unit.rowwise().norm().isApproxToConstant(1.0f, 1e-5));
  EXPECT_TRUE(unit.isApprox(text.rowwise().normalized(), 1e-5));
}

TEST_P(RetrievalFacade, IndexRetrievesWhatTheReferenceLogitsRank) {
  for (const auto mode : {EmbedMode::kC, EmbedMode::kG}) {
    EmbedOptions options;
    options.mode = mode;
    auto index = model_->create_index(mode);
    index.add(image_names_, model_->embed_image(images_, options));
    const auto path = ::testing::TempDir() + "/retrieval_facade_index.safetensors";
    index.save(path);
    const auto loaded = Index::load(path);
    ::unlink(path.c_str());
    EXPECT_EQ(loaded.model_id(), model_->model_id());
    const auto hits = model_->retrieve(captions_, loaded, 3);
    const auto logits = reference_tensor(fixture_, mode == EmbedMode::kC ? "c.logits_per_image" : "g.logits_per_image");
    for (size_t t = 0; t < captions_.size(); ++t) {
      const auto column = logits.select(1, static_cast<int64_t>(t));
      const auto sorted = std::get<0>(column.sort(0, /*descending=*/true));
      if ((sorted[0] - sorted[1]).item<float>() < 1e-3) continue;  // near-tie: order is not meaningful
      ASSERT_FALSE(hits[t].empty());
      EXPECT_EQ(hits[t][0].id, image_names_[column.argmax().item<int64_t>()]) << "caption " << t;
      // Scores are cosines: logits / exp(logit_scale).
      EXPECT_NEAR(hits[t][0].score, sorted[0].item<float>() / model_->logit_scale(), 1e-4);
    }
    // An image query finds itself first.
    const auto self = model_->retrieve(std::vector<Image>{images_[0]}, loaded, 1);
    EXPECT_EQ(self[0][0].id, image_names_[0]);
  }
}

TEST_P(RetrievalFacade, ZeroShotAveragesNormalisedTemplateEmbeddings) {
  const std::vector<std::string> classes = {captions_.at(0), captions_.at(1)};
  const std::vector<std::string> templates = {"{}", "a picture: {}."};
  const auto weights = model_->zero_shot_weights(classes, templates);
  ASSERT_EQ(weights.rows(), 2);
  for (int c = 0; c < 2; ++c) {
    const auto e = model_->embed_text({classes[c], "a picture: " + classes[c] + "."});
    const Eigen::RowVectorXf mean = (e.row(0).normalized() + e.row(1).normalized()) / 2;
    EXPECT_TRUE(weights.row(c).isApprox(mean.normalized(), 1e-5)) << c;
  }
  // With the caption itself as the only template, the top class follows the official logits.
  const auto single = model_->zero_shot_weights(captions_, {"{}"});
  const auto predictions = model_->classify(images_, single, captions_, 2);
  const auto logits = reference_tensor(fixture_, "c.logits_per_image");
  for (size_t i = 0; i < images_.size(); ++i) {
    const auto sorted = std::get<0>(logits[i].sort(0, true));
    if ((sorted[0] - sorted[1]).item<float>() < 1e-3) continue;
    EXPECT_EQ(predictions[i][0].class_index, logits[i].argmax().item<int64_t>()) << image_names_[i];
    EXPECT_GE(predictions[i][0].probability, predictions[i][1].probability);
  }
  EXPECT_GE(Model::default_templates().size(), 10u);
}

TEST_P(RetrievalFacade, BadArgumentsAreTypedErrors) {
  EmbedOptions zero;
  zero.batch_size = 0;
  EXPECT_THROW(model_->embed_text(captions_, zero), InvalidArgument);
  EXPECT_THROW(model_->embed_image({Image::from_file("/nonexistent.jpg")}), ImageError);
  EXPECT_THROW(model_->zero_shot_weights({"cat"}, {"no placeholder"}), InvalidArgument);
  EXPECT_THROW(model_->zero_shot_weights({}, {"{}"}), InvalidArgument);
  Index foreign("another-model", EmbedMode::kC, model_->embed_text({"x"}).cols());
  EXPECT_THROW(model_->retrieve(captions_, foreign, 1), InvalidArgument);
  EXPECT_EQ(model_->embed_text({}).rows(), 0);
  // Empty text is valid: the official tokenizer gives <s> summarize: </s>.
  EXPECT_EQ(model_->embed_text({""}).rows(), 1);
}

TEST(RetrievalFacadeChat, ChatCheckpointsRefuseRetrieval) {
  const auto fixtures = internvl::testing::fixtures_with_architecture("InternVLChatModel");
  if (fixtures.empty()) GTEST_SKIP() << "no fixture for this test under " << internvl::testing::fixtures_dir();
  for (const auto& fixture : fixtures) {
    const auto model = Model::load(internvl::testing::fixture_path(fixture));
    EXPECT_THROW(model.embed_text({"a"}), UnsupportedError);
    EXPECT_THROW(model.create_index(EmbedMode::kC), UnsupportedError);
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, RetrievalFacade,
                         ::testing::ValuesIn(internvl::testing::fixtures_with_architecture("InternVLModel")),
                         internvl::testing::FixtureName());
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(RetrievalFacade);

}  // namespace
