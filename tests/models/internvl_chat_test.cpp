// InternVL-Chat models (vision -> pixel shuffle -> mlp1 -> LLaMA / InternLM2 with KV cache)
// against the official references of every InternVLChatModel fixture (data-driven).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "internvl/error.h"
#include "io/config.h"
#include "io/safetensors.h"
#include "io/state_dict.h"
#include "models/internvl_chat.h"
#include "nn/kv_cache.h"
#include "support/fixtures.h"

using namespace internvl;
using internvl::testing::AllCloseToReference;
using internvl::testing::reference_tensor;

namespace {

class InternVLChatReference : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    fixture_ = GetParam();
    const auto json = io::read_config_json(internvl::testing::fixture_path(fixture_));
    config_ = io::parse_internvl_chat_config(json, fixture_);
    const io::Checkpoint checkpoint(internvl::testing::fixture_path(fixture_));
    io::resolve_output_head(config_.llm, checkpoint, "language_model.");  // as Model::load
    model_ = models::InternVLChat(config_, nn::ParamInit{});
    report_ = io::load_state_dict(*model_, checkpoint);
    model_->eval();
    ref_ = internvl::testing::fixture_reference(fixture_);
    image_token_id_ = ref_.at("config_summary").at("img_context_token_id").get<int64_t>();
  }

  // Image features of a conversation (undefined for text-only ones).
  at::Tensor features_for(const nlohmann::json& conversation) {
    const auto images = internvl::testing::conversation_images(conversation);
    if (images.empty()) return {};
    std::vector<at::Tensor> pixels;
    for (const auto& image : images) pixels.push_back(internvl::testing::reference_pixel_values(fixture_, image));
    return model_->extract_feature(at::cat(pixels, 0));
  }

  std::string fixture_;
  io::InternVLChatConfig config_;
  models::InternVLChat model_{nullptr};
  io::LoadReport report_;
  nlohmann::json ref_;
  int64_t image_token_id_ = 0;
  at::NoGradGuard no_grad_;
};

TEST_P(InternVLChatReference, EveryCheckpointTensorIsUsed) {
  EXPECT_TRUE(report_.unused.empty()) << report_.unused.size() << " unused, first: " << report_.unused.front();
  // The output head: the stored one when the checkpoint has it, else the embeddings (tied).
  const auto tie = ref_.at("config_summary").find("tie_word_embeddings");
  if (tie != ref_.at("config_summary").end() && tie->is_object()) {
    EXPECT_EQ(config_.llm.tie_word_embeddings, !tie->at("lm_head_weight_in_checkpoint").get<bool>());
  }
  const auto& lm = model_->language_model;
  EXPECT_EQ(lm->output_weight.data_ptr() == lm->embed_weight.data_ptr(), config_.llm.tie_word_embeddings);
  EXPECT_EQ(config_.num_image_token(), ref_.at("config_summary").at("num_image_token").get<int>());
}

TEST_P(InternVLChatReference, PixelShuffleAndExtractFeatureMatchOfficial) {
  const auto image = ref_.at("inputs").at("conversations").at(0).at("image").get<std::string>();
  const auto pixels = internvl::testing::reference_pixel_values(fixture_, image);
  const auto shuffled = model_->pixel_shuffled(pixels);
  EXPECT_TRUE(AllCloseToReference(shuffled, reference_tensor(fixture_, "conv_image.pixel_shuffle_out")));
  EXPECT_TRUE(AllCloseToReference(model_->project(shuffled), reference_tensor(fixture_, "conv_image.extract_feature")));
}

TEST(PixelShuffle, CellsHoldTheirTwoByTwoPatchBlocksInTheDocumentedOrder) {
  // Output cell (R, C) = patches (2R,2C), (2R,2C+1), (2R+1,2C), (2R+1,2C+1); v2 row-major, v1 column-major.
  const int64_t side = 6, channels = 2;
  const auto grid = at::arange(side * side * channels, at::kFloat).view({1, side, side, channels});
  for (const std::string version : {"v1", "v2"}) {
    const auto out = models::pixel_shuffle(grid, 0.5, version).reshape({1, -1, 4 * channels});
    for (int64_t r = 0; r < side / 2; ++r) {
      for (int64_t c = 0; c < side / 2; ++c) {
        const int64_t index = version == "v2" ? r * (side / 2) + c : c * (side / 2) + r;
        const auto cell = out[0][index];
        const auto expected = at::cat({grid[0][2 * r][2 * c], grid[0][2 * r][2 * c + 1], grid[0][2 * r + 1][2 * c],
                                       grid[0][2 * r + 1][2 * c + 1]});
        EXPECT_TRUE(at::equal(cell, expected)) << version << " cell " << r << "," << c;
      }
    }
  }
}

TEST_P(InternVLChatReference, TeacherForcedLogitsMatchEveryStep) {
  for (const auto& conversation : ref_.at("inputs").at("conversations")) {
    const auto key = conversation.at("key").get<std::string>();
    SCOPED_TRACE(key);
    const auto ids = reference_tensor(fixture_, "conv." + key + ".input_ids").view({1, -1});
    const auto generated = reference_tensor(fixture_, "conv." + key + ".generated_ids");
    const auto step_logits = reference_tensor(fixture_, "conv." + key + ".step_logits");
    const auto embeds = model_->embed_with_images(ids, features_for(conversation), image_token_id_);
    const auto& lm = model_->language_model;
    // Prefill, then one cached decode step per reference token.
    auto cache = lm->make_cache(1, 8);  // deliberately small: exercises growth
    auto hidden = lm->forward(embeds, cache);
    std::vector<at::Tensor> rows{lm->logits(hidden.select(1, -1))};
    EXPECT_TRUE(AllCloseToReference(rows[0][0], reference_tensor(fixture_, "conv." + key + ".last_prompt_logits")));
    for (int64_t t = 0; t + 1 < step_logits.size(0); ++t) {
      const auto next = lm->embed(generated.slice(0, t, t + 1).view({1, 1}));
      rows.push_back(lm->logits(lm->forward(next, cache).select(1, -1)));
    }
    EXPECT_TRUE(AllCloseToReference(at::cat(rows, 0), step_logits));
    // The same logits from one prefill over prompt + generated tokens (no incremental cache).
    auto fresh = lm->make_cache(1, ids.size(1) + step_logits.size(0));
    const auto full = at::cat({embeds, lm->embed(generated.slice(0, 0, step_logits.size(0) - 1).view({1, -1}))}, 1);
    const auto all = lm->logits(lm->forward(full, fresh).slice(1, ids.size(1) - 1))[0];
    EXPECT_TRUE(AllCloseToReference(all, step_logits));
  }
}

TEST_P(InternVLChatReference, GreedyContinuationIsTokenExact) {
  for (const auto& conversation : ref_.at("inputs").at("conversations")) {
    const auto key = conversation.at("key").get<std::string>();
    SCOPED_TRACE(key);
    const auto ids = reference_tensor(fixture_, "conv." + key + ".input_ids").view({1, -1});
    const auto expected = reference_tensor(fixture_, "conv." + key + ".generated_ids");
    const auto margins = reference_tensor(fixture_, "conv." + key + ".top1_top2_margin");
    const auto& lm = model_->language_model;
    auto cache = lm->make_cache(1, ids.size(1) + expected.size(0));
    auto logits = lm->logits(lm->forward(model_->embed_with_images(ids, features_for(conversation), image_token_id_), cache).select(1, -1));
    for (int64_t t = 0; t < expected.size(0); ++t) {
      const int64_t token = logits.argmax(-1).item<int64_t>();
      if (token != expected[t].item<int64_t>()) {
        // Allowed only right after a near-tie (fixtures README §3.8): our logit error is ~1e-6.
        EXPECT_LT(margins[t].item<float>(), 1e-5) << "step " << t;
        break;
      }
      logits = lm->logits(lm->forward(lm->embed(at::full({1, 1}, token, at::kLong)), cache).select(1, -1));
    }
  }
}

// The KV cache never holds more than the model's context: creating one past it and appending past
// it are InvalidArgument, and doubling growth stops at the bound.
TEST_P(InternVLChatReference, KvCacheIsBoundedByTheContext) {
  const auto& lm = model_->language_model;
  const int64_t context = lm->context_length();
  EXPECT_EQ(context, static_cast<int64_t>(config_.llm.max_position_embeddings *
                                          (config_.llm.rope_scaling ? config_.llm.rope_scaling->factor : 1.0)));
  EXPECT_THROW(lm->make_cache(1, context + 1), InvalidArgument);
  EXPECT_THROW(lm->make_cache(1, 0), InvalidArgument);
  EXPECT_EQ(lm->make_cache(1, 1).max_length(), context);

  // The same bound on a small cache of this model's shape (a full context is too slow to run).
  const int64_t bound = 11, heads = config_.llm.num_key_value_heads, head_dim = config_.llm.head_dim();
  nn::KVCache cache(2, 1, heads, head_dim, 2, at::kFloat, /*zero_fill=*/false, bound);
  const auto step = [&](int64_t tokens) {
    const auto k = at::randn({1, heads, tokens, head_dim});
    for (int64_t layer = 0; layer < 2; ++layer) {
      const auto [keys, values] = cache.append(layer, k, k);
      EXPECT_TRUE(at::equal(keys.slice(2, cache.length()), k));
    }
    cache.advance(tokens);
  };
  step(5);
  step(4);
  EXPECT_LE(cache.capacity(), bound);
  step(2);  // exactly the bound
  EXPECT_EQ(cache.capacity(), bound);
  EXPECT_THROW(step(1), InvalidArgument);
  EXPECT_EQ(cache.length(), bound);
  EXPECT_THROW(nn::KVCache(1, 1, heads, head_dim, bound + 1, at::kFloat, false, bound), InvalidArgument);
}

TEST_P(InternVLChatReference, RejectsMismatchedImageTokens) {
  const auto& conversation = ref_.at("inputs").at("conversations").at(0);
  const auto key = conversation.at("key").get<std::string>();
  const auto ids = reference_tensor(fixture_, "conv." + key + ".input_ids").view({1, -1});
  const auto features = features_for(conversation);
  if (!features.defined()) GTEST_SKIP();
  EXPECT_THROW(model_->embed_with_images(ids, features.slice(0, 0, features.size(0) - 1), image_token_id_),
               InvalidArgument);
  EXPECT_THROW(model_->language_model->embed(at::full({1, 1}, config_.llm.vocab_size, at::kLong)), InvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, InternVLChatReference,
                         ::testing::ValuesIn(internvl::testing::fixtures_with_architecture("InternVLChatModel")),
                         internvl::testing::FixtureName());
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(InternVLChatReference);

}  // namespace
