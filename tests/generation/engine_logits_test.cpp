// The batch engine bit for bit (issue 12): on every chat fixture's language model (CPU,
// float32), the logits of every step of a sequence are identical whether it decodes alone or in
// a batch of up to 8 others of different prompt lengths that join and leave at different steps.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <random>

#include "generation/engine.h"
#include "internvl/internvl.h"
#include "model_impl.h"
#include "support/fixtures.h"

using namespace internvl;

namespace {

class EngineLogits : public ::testing::TestWithParam<std::string> {};

TEST_P(EngineLogits, EveryStepIsBitwiseTheSameInABatch) {
  const auto model = Model::load(internvl::testing::fixture_path(GetParam()));
  const auto& lm = *model.impl().chat->language_model;
  at::NoGradGuard no_grad;
  std::mt19937 rng(5);
  const int64_t vocab = lm.config().vocab_size;
  for (int trial = 0; trial < 4; ++trial) {
    const int n = std::uniform_int_distribution<int>(2, 9)(rng);
    std::vector<generation::SequenceSpec> specs;
    for (int i = 0; i < n; ++i) {
      generation::SequenceSpec spec;
      const int64_t length = std::uniform_int_distribution<int64_t>(1, 40)(rng);
      for (int64_t t = 0; t < length; ++t) spec.prompt_ids.push_back(static_cast<int64_t>(rng() % vocab));
      spec.inputs_embeds = lm.embed(at::tensor(spec.prompt_ids, at::kLong).view({1, -1}));
      spec.options.max_new_tokens = std::uniform_int_distribution<int>(1, 20)(rng);
      if (i % 3 == 2) spec.options.sampling = {true, 0.9, 0, 1.0, 1.0, static_cast<uint64_t>(rng())};
      spec.keep_logits = true;
      specs.push_back(spec);
    }
    std::vector<generation::GenerateResult> alone;
    {
      generation::Engine engine(lm, {});
      for (const auto& spec : specs) alone.push_back(engine.submit(spec)->wait());
      EXPECT_EQ(engine.stats().max_active, 1);
    }
    generation::EngineOptions options;
    options.max_batch = 8;  // a ninth sequence waits for a free slot
    generation::Engine engine(lm, options);
    std::vector<std::shared_ptr<generation::SequenceTicket>> tickets;
    for (const auto& spec : specs) tickets.push_back(engine.submit(spec));
    for (int i = 0; i < n; ++i) {
      SCOPED_TRACE("trial " + std::to_string(trial) + " sequence " + std::to_string(i));
      const auto batched = tickets[i]->wait();
      ASSERT_EQ(batched.tokens, alone[i].tokens);
      ASSERT_EQ(batched.step_logits.size(), alone[i].step_logits.size());
      for (size_t step = 0; step < batched.step_logits.size(); ++step) {
        ASSERT_TRUE(at::equal(batched.step_logits[step], alone[i].step_logits[step])) << "step " << step;
      }
    }
    EXPECT_GE(engine.stats().max_active, 2);
    EXPECT_LE(engine.stats().max_active, 8);
  }
}

TEST_P(EngineLogits, RefusesWhatDoesNotFit) {
  const auto model = Model::load(internvl::testing::fixture_path(GetParam()));
  const auto& lm = *model.impl().chat->language_model;
  generation::Engine engine(lm, {});
  generation::SequenceSpec spec;
  spec.prompt_ids = {1};
  spec.inputs_embeds = lm.embed(at::tensor(spec.prompt_ids, at::kLong).view({1, -1}));
  spec.options.max_new_tokens = static_cast<int64_t>(lm.context_length());
  EXPECT_THROW(engine.submit(spec), InvalidArgument);  // prompt + max_new_tokens over the context
  spec.options.max_new_tokens = 0;
  EXPECT_THROW(engine.submit(spec), InvalidArgument);
  spec.options.max_new_tokens = 2;
  spec.inputs_embeds = at::zeros({1, 1, lm.config().hidden_size + 1});
  EXPECT_THROW(engine.submit(spec), InvalidArgument);
  EXPECT_THROW(generation::Engine(lm, {0, true}), InvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, EngineLogits,
                         ::testing::ValuesIn(internvl::testing::fixtures_with_architecture("InternVLChatModel")),
                         internvl::testing::FixtureName());
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(EngineLogits);

}  // namespace
