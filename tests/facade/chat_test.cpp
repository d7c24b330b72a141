// Model::chat against the official chat() of every InternVLChatModel fixture: prompt strings,
// token ids, greedy continuations and responses exactly; logits within tolerance; streaming,
// sampling and bad input.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "internvl/internvl.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;
using namespace internvl;
using internvl::testing::reference_tensor;

namespace {

std::vector<int64_t> as_ids(const nlohmann::json& j) { return j.get<std::vector<int64_t>>(); }

class ChatFacade : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    fixture_ = GetParam();
    model_ = std::make_unique<Model>(Model::load(internvl::testing::fixture_path(fixture_)));
    ref_ = internvl::testing::fixture_reference(fixture_);
  }
  ChatRequest request_for(const nlohmann::json& conversation) const {
    ChatRequest request;
    request.question = conversation.at("question").get<std::string>();
    for (const auto& image : internvl::testing::conversation_images(conversation)) {
      request.images.push_back(Image::from_file((fs::path(internvl::testing::images_dir()) / image).string()));
    }
    if (!conversation.at("history_in").is_null()) {
      for (const auto& turn : conversation.at("history_in")) {
        request.history.push_back({turn.at(0).get<std::string>(), turn.at(1).get<std::string>()});
      }
    }
    request.generation.max_new_tokens = ref_.at("generation").at("max_new_tokens").get<int>();
    return request;
  }
  std::string fixture_;
  std::unique_ptr<Model> model_;
  nlohmann::json ref_;
};

TEST_P(ChatFacade, MatchesOfficialChat) {
  for (const auto& conversation : ref_.at("inputs").at("conversations")) {
    const auto key = conversation.at("key").get<std::string>();
    SCOPED_TRACE(key);
    std::string streamed;
    const auto result = model_->chat(request_for(conversation), [&](const std::string& text) {
      streamed += text;
      return true;
    });
    EXPECT_EQ(result.prompt, conversation.at("prompt").get<std::string>());
    EXPECT_EQ(result.input_ids, as_ids(conversation.at("input_ids")));
    std::vector<int> tiles;
    for (const auto& n : conversation.at("num_patches_list")) tiles.push_back(n.get<int>());
    EXPECT_EQ(result.tiles_per_image, tiles);
    const auto expected = as_ids(conversation.at("generated_ids"));
    const auto margins = reference_tensor(fixture_, "conv." + key + ".top1_top2_margin");
    size_t same = 0;
    while (same < expected.size() && same < result.output_ids.size() && expected[same] == result.output_ids[same]) ++same;
    if (same < expected.size()) {
      EXPECT_LT(margins[static_cast<int64_t>(same)].item<float>(), 1e-5) << "diverged at step " << same;
    } else {
      EXPECT_EQ(result.output_ids.size(), expected.size());
      EXPECT_EQ(result.response, conversation.at("response").get<std::string>());
      EXPECT_EQ(result.stopped_on_eos, conversation.at("stopped_on_eos").get<bool>());
    }
    const auto first = at::from_blob(const_cast<float*>(result.first_logits.data()),
                                     {static_cast<int64_t>(result.first_logits.size())}, at::kFloat);
    EXPECT_TRUE(internvl::testing::AllCloseToReference(first, reference_tensor(fixture_, "conv." + key + ".last_prompt_logits")));
    // Streaming yields the decoded text of the generated tokens (before the official strip()).
    EXPECT_EQ(result.response, std::string(streamed.begin() + std::min(streamed.find_first_not_of(" \t\n"), streamed.size()),
                                           streamed.begin() + (streamed.find_last_not_of(" \t\n") == std::string::npos
                                                                   ? 0 : streamed.find_last_not_of(" \t\n") + 1)));
  }
}

TEST_P(ChatFacade, CallbackStopsGeneration) {
  const auto& conversation = ref_.at("inputs").at("conversations").back();
  int calls = 0;
  const auto result = model_->chat(request_for(conversation), [&](const std::string&) { return ++calls < 2; });
  EXPECT_EQ(calls, 2);
  EXPECT_LT(result.output_ids.size(), static_cast<size_t>(ref_.at("generation").at("max_new_tokens").get<int>()));
  EXPECT_FALSE(result.stopped_on_eos);
}

// A stop string that begins inside a piece: the piece's text before it is still streamed, the
// stream never holds the stop string, and the response is the unstopped one cut there.
TEST_P(ChatFacade, StreamKeepsTheTextBeforeAStopString) {
  const auto& conversation = ref_.at("inputs").at("conversations").back();
  std::string full;
  const auto unstopped = model_->chat(request_for(conversation), [&](const std::string& text) {
    full += text;
    return true;
  });
  ASSERT_GT(full.size(), 8u);
  int checked = 0;
  for (size_t start = 1; start + 2 < full.size() && start < 48; start += 3) {
    const std::string stop = full.substr(start, 2);
    const size_t cut = full.find(stop);
    auto request = request_for(conversation);
    request.generation.stop_strings = {stop};
    std::string streamed;
    const auto result = model_->chat(request, [&](const std::string& text) {
      streamed += text;
      return true;
    });
    SCOPED_TRACE("stop '" + stop + "' at byte " + std::to_string(cut));
    EXPECT_EQ(result.finish_reason, internvl::FinishReason::kStopString);
    // Everything before the stop string is streamed; a stop string spanning pieces may leave
    // its start in pieces sent before it was complete, never more.
    EXPECT_EQ(streamed.compare(0, cut, full, 0, cut), 0) << "streamed: " << streamed;
    EXPECT_LT(streamed.size(), cut + stop.size());
    EXPECT_EQ(full.compare(0, streamed.size(), streamed), 0);
    EXPECT_EQ(unstopped.response.find(result.response), 0u);
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

TEST_P(ChatFacade, SamplingIsSeededAndTopKOneIsGreedy) {
  const auto& conversation = ref_.at("inputs").at("conversations").back();
  auto request = request_for(conversation);
  request.generation.do_sample = true;
  request.generation.temperature = 0.7;
  request.generation.top_p = 0.9;
  request.generation.seed = 42;
  const auto a = model_->chat(request);
  const auto b = model_->chat(request);
  EXPECT_EQ(a.output_ids, b.output_ids);
  request.generation.top_k = 1;
  request.generation.top_p = 1.0;
  EXPECT_EQ(model_->chat(request).output_ids, as_ids(conversation.at("generated_ids")));
  // A strong repetition penalty changes the greedy continuation of this gibberish model or keeps
  // it; either way it must not repeat a token that greedy decoding repeated more than the prompt did.
  request.generation.do_sample = false;
  request.generation.repetition_penalty = 1e6;
  const auto penalised = model_->chat(request);
  std::set<int64_t> seen(penalised.input_ids.begin(), penalised.input_ids.end());
  for (const auto id : penalised.output_ids) {
    EXPECT_TRUE(seen.insert(id).second) << "token " << id << " repeated despite the penalty";
  }
}

TEST_P(ChatFacade, BadRequestsAreTypedErrors) {
  auto request = request_for(ref_.at("inputs").at("conversations").back());
  auto bad = request;
  bad.generation.max_new_tokens = 0;
  EXPECT_THROW(model_->chat(bad), InvalidArgument);
  bad = request;
  bad.generation.temperature = 0;
  bad.generation.do_sample = true;
  EXPECT_THROW(model_->chat(bad), InvalidArgument);
  bad = request;
  bad.generation.top_p = 1.5;
  EXPECT_THROW(model_->chat(bad), InvalidArgument);
  bad = request;
  bad.generation.max_new_tokens = 100000000;  // beyond any context
  EXPECT_THROW(model_->chat(bad), InvalidArgument);
  bad = request;
  bad.images.push_back(Image::from_file("/nonexistent/picture.png"));
  EXPECT_THROW(model_->chat(bad), ImageError);
  bad = request;
  bad.question = "<image>\n<image>\nTwo placeholders, one image";
  bad.images.clear();
  bad.images.push_back(Image::from_file((fs::path(internvl::testing::images_dir()) /
                                         ref_.at("inputs").at("images").at(0).at("file").get<std::string>()).string()));
  EXPECT_THROW(model_->chat(bad), InvalidArgument);
  bad.max_tiles = -1;
  EXPECT_THROW(model_->chat(bad), InvalidArgument);
  EXPECT_FALSE(model_->chat_template().empty());
}

TEST_P(ChatFacade, SeveralImagesFillSuccessivePlaceholders) {
  ChatRequest request;
  request.question = "Compare them.";
  for (int i = 0; i < 2; ++i) {
    request.images.push_back(Image::from_file(
        (fs::path(internvl::testing::images_dir()) / ref_.at("inputs").at("images").at(i).at("file").get<std::string>()).string()));
  }
  request.max_tiles = 2;
  request.generation.max_new_tokens = 2;
  const auto result = model_->chat(request);
  ASSERT_EQ(result.tiles_per_image.size(), 2u);
  for (const auto n : result.tiles_per_image) EXPECT_LE(n, 3);  // at most 2 tiles + thumbnail
  const auto summary = ref_.at("config_summary");
  const int64_t per_tile = summary.at("num_image_token").get<int64_t>();
  const int64_t context_id = summary.at("img_context_token_id").get<int64_t>();
  const auto count = std::count(result.input_ids.begin(), result.input_ids.end(), context_id);
  EXPECT_EQ(count, per_tile * (result.tiles_per_image[0] + result.tiles_per_image[1]));
  EXPECT_EQ(result.prompt.find("<image>"), std::string::npos);
}

// Several images without placeholders get the official README's "Image-k: <image>\n" lines: the
// reference multi-image conversations, with those lines removed, give the same prompt.
TEST_P(ChatFacade, SeveralImagesWithoutPlaceholdersGetTheReadmePrompt) {
  int checked = 0;
  for (const auto& conversation : ref_.at("inputs").at("conversations")) {
    const auto images = internvl::testing::conversation_images(conversation);
    if (images.size() < 2 || !conversation.at("history_in").is_null()) continue;
    auto request = request_for(conversation);
    std::string readme_prefix;
    for (size_t i = 0; i < images.size(); ++i) readme_prefix += "Image-" + std::to_string(i + 1) + ": <image>\n";
    if (request.question.rfind(readme_prefix, 0) != 0) continue;
    request.question = request.question.substr(readme_prefix.size());
    request.generation.max_new_tokens = 1;
    const auto result = model_->chat(request);
    EXPECT_EQ(result.prompt, conversation.at("prompt").get<std::string>());
    EXPECT_EQ(result.input_ids, as_ids(conversation.at("input_ids")));
    ++checked;
  }
  if (checked == 0) GTEST_SKIP() << fixture_ << " has no multi-image conversation in the README form";
}

TEST(ChatFacadeRetrieval, RetrievalCheckpointsRefuseChat) {
  const auto fixtures = internvl::testing::fixtures_with_architecture("InternVLModel");
  if (fixtures.empty()) GTEST_SKIP() << "no fixture for this test under " << internvl::testing::fixtures_dir();
  for (const auto& fixture : fixtures) {
    const auto model = Model::load(internvl::testing::fixture_path(fixture));
    ChatRequest request;
    request.question = "hi";
    EXPECT_THROW(model.chat(request), UnsupportedError);
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ChatFacade,
                         ::testing::ValuesIn(internvl::testing::fixtures_with_architecture("InternVLChatModel")),
                         internvl::testing::FixtureName());
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(ChatFacade);

}  // namespace
