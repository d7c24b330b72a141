// LoadOptions::parts: a load reads only the parts asked for, a part left out is read on the first
// call that needs it, and the answers are those of a full load. "Never read" is shown with a
// checkpoint that lacks a tensor of the part left out: the load and the calls that do not need
// the part succeed, the first call that does fails naming the tensor.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "common/eigen_tensor.h"
#include "internvl/internvl.h"
#include "io/safetensors.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;
using namespace internvl;
using internvl::testing::AllCloseToReference;
using internvl::testing::reference_tensor;

namespace {

std::string first_tensor_under(const std::string& fixture, const std::string& prefix) {
  const io::Checkpoint checkpoint(internvl::testing::fixture_path(fixture));
  for (const auto& name : checkpoint.names()) {
    if (name.rfind(prefix, 0) == 0) return name;
  }
  return "";
}

LoadOptions with_parts(ModelParts parts) {
  LoadOptions options;
  options.parts = parts;
  return options;
}

class ClipParts : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    fixture_ = GetParam();
    const auto ref = internvl::testing::fixture_reference(fixture_);
    for (const auto& image : ref.at("inputs").at("images")) {
      images_.push_back(Image::from_file((fs::path(internvl::testing::images_dir()) / image.at("file").get<std::string>()).string()));
    }
    for (const auto& caption : ref.at("inputs").at("captions")) captions_.push_back(caption.at("text").get<std::string>());
  }
  std::string fixture_;
  std::vector<Image> images_;
  std::vector<std::string> captions_;
};

TEST_P(ClipParts, TextOnlyLoadReadsVisionOnFirstImage) {
  const auto model = Model::load(internvl::testing::fixture_path(fixture_), with_parts(ModelParts::kText));
  EXPECT_EQ(model.loaded_parts(), ModelParts::kText);
  EXPECT_TRUE(AllCloseToReference(to_tensor(model.embed_text(captions_)), reference_tensor(fixture_, "c.text_embeds")));
  EXPECT_EQ(model.loaded_parts(), ModelParts::kText);
  EXPECT_TRUE(AllCloseToReference(to_tensor(model.embed_image(images_)), reference_tensor(fixture_, "c.image_embeds")));
  EXPECT_EQ(model.loaded_parts(), ModelParts::kText | ModelParts::kVision);
  // The model id and the parameter count do not depend on what was read when.
  const auto full = Model::load(internvl::testing::fixture_path(fixture_));
  EXPECT_EQ(full.loaded_parts(), ModelParts::kVision | ModelParts::kText);
  EXPECT_EQ(model.model_id(), full.model_id());
  EXPECT_EQ(model.info().num_parameters, full.info().num_parameters);
}

TEST_P(ClipParts, VisionOnlyLoadReadsTextForTheGModeAndQueries) {
  const auto model = Model::load(internvl::testing::fixture_path(fixture_), with_parts(ModelParts::kVision));
  EXPECT_EQ(model.loaded_parts(), ModelParts::kVision);
  EXPECT_TRUE(AllCloseToReference(to_tensor(model.embed_image(images_)), reference_tensor(fixture_, "c.image_embeds")));
  EXPECT_EQ(model.loaded_parts(), ModelParts::kVision);  // InternVL-C needs no QLLaMA
  EmbedOptions g;
  g.mode = EmbedMode::kG;
  EXPECT_TRUE(AllCloseToReference(to_tensor(model.embed_image(images_, g)), reference_tensor(fixture_, "g.image_embeds")));
  EXPECT_EQ(model.loaded_parts(), ModelParts::kVision | ModelParts::kText);
}

TEST_P(ClipParts, APartLeftOutIsNeverRead) {
  const auto vision_tensor = first_tensor_under(fixture_, "vision_model.");
  ASSERT_FALSE(vision_tensor.empty());
  const auto dir = ::testing::TempDir() + "/load_parts_" + fixture_;
  internvl::testing::copy_checkpoint(fixture_, dir, vision_tensor);
  // A full load refuses the damaged checkpoint, naming the tensor.
  try {
    Model::load(dir);
    ADD_FAILURE() << "a checkpoint without " << vision_tensor << " loaded";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find(vision_tensor), std::string::npos) << e.what();
  }
  const auto model = Model::load(dir, with_parts(ModelParts::kText));
  EXPECT_TRUE(AllCloseToReference(to_tensor(model.embed_text(captions_)), reference_tensor(fixture_, "c.text_embeds")));
  for (int attempt = 0; attempt < 2; ++attempt) {  // a failed read is retried, and fails the same way
    try {
      model.embed_image(images_);
      ADD_FAILURE() << "embed_image ran without " << vision_tensor;
    } catch (const CheckpointError& e) {
      EXPECT_NE(std::string(e.what()).find(vision_tensor), std::string::npos) << e.what();
    }
    EXPECT_EQ(model.loaded_parts(), ModelParts::kText);
  }
  // Text still works after the failed read.
  EXPECT_TRUE(AllCloseToReference(to_tensor(model.embed_text(captions_)), reference_tensor(fixture_, "c.text_embeds")));
  fs::remove_all(dir);
}

TEST_P(ClipParts, ConcurrentFirstUseReadsThePartOnce) {
  const auto model = Model::load(internvl::testing::fixture_path(fixture_), with_parts(ModelParts::kNone));
  EXPECT_EQ(model.loaded_parts(), ModelParts::kNone);
  const auto expected = reference_tensor(fixture_, "c.image_embeds");
  std::vector<Matrix> results(4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < results.size(); ++t) {
    threads.emplace_back([&, t] { results[t] = model.embed_image(images_); });
  }
  for (auto& thread : threads) thread.join();
  for (const auto& rows : results) EXPECT_TRUE(AllCloseToReference(to_tensor(rows), expected));
  EXPECT_EQ(model.loaded_parts(), ModelParts::kVision);
}

TEST(LoadParts, UnknownBitsAreRefused) {
  const auto fixtures = internvl::testing::fixture_names();
  ASSERT_FALSE(fixtures.empty());
  LoadOptions options;
  options.parts = static_cast<ModelParts>(64);
  EXPECT_THROW(Model::load(internvl::testing::fixture_path(fixtures.front()), options), InvalidArgument);
}

class ChatParts : public ::testing::TestWithParam<std::string> {};

ChatRequest request(const std::string& question, std::vector<Image> images = {}) {
  ChatRequest r;
  r.question = question;
  r.images = std::move(images);
  r.generation.max_new_tokens = 6;
  return r;
}

TEST_P(ChatParts, LanguageModelOnlyLoadAnswersAsAFullLoad) {
  const auto fixture = GetParam();
  const auto vision_tensor = first_tensor_under(fixture, "vision_model.");
  ASSERT_FALSE(vision_tensor.empty());
  const auto full = Model::load(internvl::testing::fixture_path(fixture));
  const auto first_image = internvl::testing::fixture_reference(fixture).at("inputs").at("images").at(0).at("file");
  const auto image =
      Image::from_file((fs::path(internvl::testing::images_dir()) / first_image.get<std::string>()).string());
  const auto text_question = request("Tell me a story.");
  const auto image_question = request("<image>\nWhat is in the picture?", {image});
  const auto expected_text = full.chat(text_question);
  const auto expected_image = full.chat(image_question);

  const auto lazy = Model::load(internvl::testing::fixture_path(fixture), with_parts(ModelParts::kLanguageModel));
  EXPECT_EQ(lazy.loaded_parts(), ModelParts::kLanguageModel);
  EXPECT_EQ(lazy.chat(text_question).output_ids, expected_text.output_ids);
  EXPECT_EQ(lazy.loaded_parts(), ModelParts::kLanguageModel);
  EXPECT_EQ(lazy.chat(image_question).output_ids, expected_image.output_ids);
  EXPECT_EQ(lazy.loaded_parts(), ModelParts::kLanguageModel | ModelParts::kVision);

  // Nothing at load: the first chat reads the language model.
  const auto bare = Model::load(internvl::testing::fixture_path(fixture), with_parts(ModelParts::kNone));
  EXPECT_EQ(bare.loaded_parts(), ModelParts::kNone);
  EXPECT_EQ(bare.chat(text_question).output_ids, expected_text.output_ids);
  EXPECT_EQ(bare.loaded_parts(), ModelParts::kLanguageModel);

  // Without one vision tensor: text chat works, an image is a CheckpointError naming it.
  const auto dir = ::testing::TempDir() + "/load_parts_" + fixture;
  internvl::testing::copy_checkpoint(fixture, dir, vision_tensor);
  const auto damaged = Model::load(dir, with_parts(ModelParts::kLanguageModel));
  EXPECT_EQ(damaged.chat(text_question).output_ids, expected_text.output_ids);
  try {
    damaged.chat(image_question);
    ADD_FAILURE() << "chat with an image ran without " << vision_tensor;
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find(vision_tensor), std::string::npos) << e.what();
  }
  EXPECT_EQ(damaged.chat(text_question).output_ids, expected_text.output_ids);
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ClipParts,
                         ::testing::ValuesIn(internvl::testing::fixtures_with_architecture("InternVLModel")),
                         internvl::testing::FixtureName());
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(ClipParts);
INSTANTIATE_TEST_SUITE_P(Fixtures, ChatParts,
                         ::testing::ValuesIn(internvl::testing::fixtures_with_architecture("InternVLChatModel")),
                         internvl::testing::FixtureName());
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(ChatParts);

}  // namespace
