// The tools read only the parts of a checkpoint a command needs. Shown with a copy of each
// fixture that lacks one vision tensor: what needs no vision (text search, embed --texts, a chat
// question without images) still works and gives the reference answers; what needs it fails
// naming the tensor (exit 1).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "internvl/internvl.h"
#include "io/safetensors.h"
#include "io/tensor_convert.h"
#include "support/fixtures.h"
#include "support/tool_runner.h"

namespace fs = std::filesystem;
using internvl::testing::AllCloseToReference;
using internvl::testing::describe;
using internvl::testing::reference_tensor;

namespace {

bool contains(const std::string& haystack, const std::string& needle) { return haystack.find(needle) != std::string::npos; }

std::string first_vision_tensor(const std::string& fixture) {
  const internvl::io::Checkpoint checkpoint(internvl::testing::fixture_path(fixture));
  for (const auto& name : checkpoint.names()) {
    if (name.rfind("vision_model.", 0) == 0) return name;
  }
  return "";
}

class DamagedCopy : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    fixture_ = GetParam();
    dropped_ = first_vision_tensor(fixture_);
    ASSERT_FALSE(dropped_.empty());
    dir_ = internvl::testing::unique_temp_path("tool_parts", fixture_);
    internvl::testing::copy_checkpoint(fixture_, dir_, dropped_);
    const auto ref = internvl::testing::fixture_reference(fixture_);
    for (const auto& image : ref.at("inputs").at("images")) {
      images_.push_back((fs::path(internvl::testing::images_dir()) / image.at("file").get<std::string>()).string());
    }
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }
  std::string fixture_, dropped_, dir_;
  std::vector<std::string> images_;
};

class RetrieveParts : public DamagedCopy {};

std::string retrieve_tool() {
  return internvl::testing::example_tool_path("INTERNVL_RETRIEVE_TOOL", "examples/retrieve/internvl-retrieve");
}

TEST_P(RetrieveParts, TextCommandsNeverReadTheVisionTower) {
  if (!fs::exists(retrieve_tool())) GTEST_SKIP() << "internvl-retrieve not built";
  std::vector<std::string> captions;
  const auto reference = internvl::testing::fixture_reference(fixture_);
  for (const auto& c : reference.at("inputs").at("captions")) {
    captions.push_back(c.at("text").get<std::string>());
  }
  // embed --texts: the reference text embeddings.
  const auto out = dir_ + "/texts.safetensors";
  std::vector<std::string> args = {"embed", "-m", dir_, "--quiet", "--save-embeddings", out};
  args.push_back("--texts");
  args.insert(args.end(), captions.begin(), captions.end());
  auto run = internvl::testing::run_tool(retrieve_tool(), args);
  ASSERT_EQ(run.status, 0) << describe(run);
  internvl::io::SafetensorsFile file(out);
  EXPECT_TRUE(AllCloseToReference(internvl::io::to_tensor(file.tensor("text_embeds"), at::kFloat),
                                  reference_tensor(fixture_, "c.text_embeds")));

  // search with a text query over an index of this model (rows written through the library).
  const auto index_path = dir_ + "/index.safetensors";
  {
    internvl::LoadOptions load;
    load.parts = internvl::ModelParts::kText;
    const auto model = internvl::Model::load(dir_, load);
    auto index = model.create_index(internvl::EmbedMode::kC);
    index.add(captions, model.embed_text(captions));
    index.save(index_path);
  }
  run = internvl::testing::run_tool(retrieve_tool(), {"search", "-m", dir_, "--quiet", "--json", "--index", index_path,
                                                      "--top-k", "1", "--query", captions.front()});
  ASSERT_EQ(run.status, 0) << describe(run);
  EXPECT_TRUE(contains(run.out, captions.front())) << run.out;

  // What needs the vision tower fails, naming the tensor that is not there.
  run = internvl::testing::run_tool(retrieve_tool(), {"embed", "-m", dir_, "--quiet", "--images", images_.front()});
  EXPECT_EQ(run.status, 1) << describe(run);
  EXPECT_TRUE(contains(run.err, dropped_)) << run.err;
}

class ChatParts : public DamagedCopy {};

TEST_P(ChatParts, TextQuestionNeverReadsTheVisionTower) {
  const auto tool = internvl::testing::example_tool_path("INTERNVL_CHAT_TOOL", "examples/chat/internvl-chat");
  if (!fs::exists(tool)) GTEST_SKIP() << "internvl-chat not built";
  const std::vector<std::string> question = {"-p", "Tell me a story.", "-n", "6"};
  auto args = std::vector<std::string>{"-m", internvl::testing::fixture_path(fixture_)};
  args.insert(args.end(), question.begin(), question.end());
  const auto intact = internvl::testing::run_tool(tool, args);
  ASSERT_EQ(intact.status, 0) << describe(intact);
  args = {"-m", dir_};
  args.insert(args.end(), question.begin(), question.end());
  const auto damaged = internvl::testing::run_tool(tool, args);
  ASSERT_EQ(damaged.status, 0) << describe(damaged);
  EXPECT_EQ(damaged.out, intact.out);
  args.insert(args.end(), {"--image", images_.front()});
  const auto with_image = internvl::testing::run_tool(tool, args);
  EXPECT_EQ(with_image.status, 1) << describe(with_image);
  EXPECT_TRUE(contains(with_image.err, dropped_)) << with_image.err;
}

TEST_P(ChatParts, VisionToolNeverReadsTheLanguageModel) {
  const auto tool = internvl::testing::example_tool_path("INTERNVL_VISION_TOOL", "examples/vision/internvl-vision");
  if (!fs::exists(tool)) GTEST_SKIP() << "internvl-vision not built";
  // A copy without one language-model tensor still runs the vision tower.
  const internvl::io::Checkpoint checkpoint(internvl::testing::fixture_path(fixture_));
  std::string lm_tensor;
  for (const auto& name : checkpoint.names()) {
    if (name.rfind("language_model.", 0) == 0) {
      lm_tensor = name;
      break;
    }
  }
  ASSERT_FALSE(lm_tensor.empty());
  const auto dir = dir_ + "_lm";
  internvl::testing::copy_checkpoint(fixture_, dir, lm_tensor);
  const auto run = internvl::testing::run_tool(tool, {"-m", dir, images_.front()});
  std::error_code ec;
  fs::remove_all(dir, ec);
  ASSERT_EQ(run.status, 0) << describe(run);
  EXPECT_TRUE(contains(run.out, "features [")) << run.out;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, RetrieveParts,
                         ::testing::ValuesIn(internvl::testing::fixtures_with_architecture("InternVLModel")),
                         internvl::testing::FixtureName());
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(RetrieveParts);
INSTANTIATE_TEST_SUITE_P(Fixtures, ChatParts,
                         ::testing::ValuesIn(internvl::testing::fixtures_with_architecture("InternVLChatModel")),
                         internvl::testing::FixtureName());
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(ChatParts);

}  // namespace
