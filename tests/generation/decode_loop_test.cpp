// The device decode loop (issue 5): greedy selection on the device, the pipelined loop and the
// static-buffer (CUDA-graph) decode step. On CPU the pipelined loop must choose exactly the
// tokens of the plain loop, and the static step must give the eager step's logits; the CUDA
// tests (skipped without a device) check graph replay against the same step run eagerly.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <string>
#include <tuple>

#include "generation/decode_step.h"
#include "generation/generator.h"
#include "generation/sampler.h"
#include "internvl/error.h"
#include "kernels/cuda_graph.h"
#include "kernels/cuda_ops.h"
#include "nn/layers.h"

using namespace internvl;
using generation::detail::DecodeMode;

namespace {

io::LlmConfig tiny_config(const std::string& architecture, int heads, int kv_heads, int head_dim) {
  io::LlmConfig c;
  c.architecture = architecture;
  c.vocab_size = 211;  // odd sizes throughout
  c.num_attention_heads = heads;
  c.num_key_value_heads = kv_heads;
  c.hidden_size = heads * head_dim;
  c.intermediate_size = 3 * c.hidden_size + 5;
  c.num_hidden_layers = 3;
  c.max_position_embeddings = 512;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 10000;
  return c;
}

models::CausalLM tiny_model(const io::LlmConfig& config, at::ScalarType dtype, at::Device device, uint64_t seed) {
  models::CausalLM lm(config, nn::ParamInit{at::kFloat, at::kCPU});
  nn::init_random(*lm, seed);
  lm->to(device, dtype);
  // init_random keeps logits small; sharpen the output so greedy choices have clear margins.
  at::NoGradGuard no_grad;
  lm->output_weight.mul_(8);
  return lm;
}

at::Tensor prompt_embeds(const models::CausalLMImpl& lm, int64_t length, uint64_t seed) {
  at::manual_seed(seed);
  const auto ids = at::randint(lm.config().vocab_size, {1, length}, at::kLong);
  at::NoGradGuard no_grad;
  return lm.embed(ids);
}

double rel_error(const at::Tensor& actual, const at::Tensor& expected) {
  const auto a = actual.to(at::kDouble).cpu(), e = expected.to(at::kDouble).cpu();
  return ((a - e).norm() / e.norm()).item<double>();
}

TEST(GreedyToken, EqualsTheHostSamplerBitForBit) {
  at::manual_seed(3);
  for (const double penalty : {1.0, 1.3, 0.7}) {
    generation::SamplingOptions options;
    options.repetition_penalty = penalty;
    generation::Sampler sampler(options);
    for (int trial = 0; trial < 20; ++trial) {
      const auto logits = at::randn({1001}) * 3;
      // Seen ids with duplicates and ids outside the vocabulary (ignored by both).
      std::vector<int64_t> seen = {5, 5, 999, 1000, -1, 5000};
      for (int i = 0; i < trial; ++i) seen.push_back(logits.argmax().item<int64_t>() + i);
      const auto mask = generation::seen_mask(seen, 1001, at::kCPU);
      const auto token = generation::greedy_token(logits, mask, penalty);
      ASSERT_EQ(token.sizes(), at::IntArrayRef({1}));
      EXPECT_EQ(token.item<int64_t>(), sampler.next(logits, seen)) << "penalty " << penalty << " trial " << trial;
    }
  }
  EXPECT_THROW(generation::greedy_token(at::randn({10}), at::ones({9}, at::kBool), 1.5), InvalidArgument);
}

// Same tokens and stop reason from the plain loop and the pipelined loop, on CPU.
class PipelinedLoop : public ::testing::TestWithParam<DecodeMode> {};

TEST_P(PipelinedLoop, ChoosesTheTokensOfThePlainLoop) {
  const auto config = tiny_config("InternLM2ForCausalLM", 4, 2, 16);
  const auto lm = tiny_model(config, at::kFloat, at::kCPU, 11);
  const auto embeds = prompt_embeds(*lm, 13, 1);
  const std::vector<int64_t> prompt_ids = {1, 7, 7, 42};
  struct Case {
    const char* name;
    generation::GenerateOptions options;
  };
  std::vector<Case> cases;
  generation::GenerateOptions greedy;
  greedy.max_new_tokens = 9;
  cases.push_back({"greedy", greedy});
  auto penalty = greedy;
  penalty.sampling.repetition_penalty = 1.7;
  cases.push_back({"greedy with penalty", penalty});
  auto sample = greedy;
  sample.sampling.do_sample = true;
  sample.sampling.temperature = 0.9;
  sample.sampling.top_p = 0.8;
  sample.sampling.top_k = 50;
  sample.sampling.seed = 4;
  cases.push_back({"sampling", sample});
  for (auto c : cases) {
    SCOPED_TRACE(c.name);
    const auto plain = generation::generate(*lm, embeds, prompt_ids, c.options);
    ASSERT_EQ(plain.tokens.size(), 9u);
    const auto piped = generation::detail::generate_pipelined(*lm, embeds, prompt_ids, c.options, {}, GetParam());
    if (GetParam() == DecodeMode::kEager) {
      EXPECT_EQ(piped.tokens, plain.tokens);
      EXPECT_TRUE(at::equal(piped.first_logits, plain.first_logits));
    } else {
      // The static step attends over the whole (masked) cache: equal up to float rounding, and
      // these tokens have clear margins.
      EXPECT_EQ(piped.tokens, plain.tokens);
      EXPECT_LT(rel_error(piped.first_logits, plain.first_logits), 1e-6);
    }
    EXPECT_EQ(piped.reason, generation::StopReason::kMaxTokens);

    // A stop id ends both at the same place, stop token included.
    auto stopping = c.options;
    stopping.stop_ids = {plain.tokens[3], 100000};
    const auto plain_stop = generation::generate(*lm, embeds, prompt_ids, stopping);
    const auto piped_stop = generation::detail::generate_pipelined(*lm, embeds, prompt_ids, stopping, {}, GetParam());
    EXPECT_EQ(piped_stop.tokens, plain_stop.tokens);
    EXPECT_EQ(piped_stop.reason, generation::StopReason::kStopToken);
    EXPECT_LE(piped_stop.tokens.size(), 4u);

    // The callback sees each token once, in order, and can stop.
    std::vector<int64_t> streamed;
    const auto piped_cb = generation::detail::generate_pipelined(
        *lm, embeds, prompt_ids, c.options,
        [&](int64_t token) {
          streamed.push_back(token);
          return streamed.size() < 5;
        },
        GetParam());
    EXPECT_EQ(piped_cb.reason, generation::StopReason::kCallback);
    EXPECT_EQ(streamed, std::vector<int64_t>(plain.tokens.begin(), plain.tokens.begin() + 5));
    EXPECT_EQ(piped_cb.tokens, streamed);
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, PipelinedLoop, ::testing::Values(DecodeMode::kEager, DecodeMode::kStatic),
                         [](const auto& info) { return info.param == DecodeMode::kEager ? "Eager" : "Static"; });

TEST(PipelinedLoop, RejectsWhatThePlainLoopRejects) {
  const auto lm = tiny_model(tiny_config("LlamaForCausalLM", 2, 2, 16), at::kFloat, at::kCPU, 2);
  const auto embeds = prompt_embeds(*lm, 5, 2);
  generation::GenerateOptions options;
  options.max_new_tokens = 0;
  EXPECT_THROW(generation::detail::generate_pipelined(*lm, embeds, {}, options, {}, DecodeMode::kEager), InvalidArgument);
  options.max_new_tokens = 600;  // beyond the 512-token context
  EXPECT_THROW(generation::detail::generate_pipelined(*lm, embeds, {}, options, {}, DecodeMode::kStatic), InvalidArgument);
  options.max_new_tokens = 4;
  options.sampling.top_p = 0;
  EXPECT_THROW(generation::detail::generate_pipelined(*lm, embeds, {}, options, {}, DecodeMode::kEager), InvalidArgument);
}

// The static step against the eager step, token by token (teacher forced), for both families,
// grouped-query heads and linear RoPE scaling.
using StaticCase = std::tuple<std::string, int, int, bool>;
class StaticStep : public ::testing::TestWithParam<StaticCase> {};

TEST_P(StaticStep, MatchesTheEagerStep) {
  const auto& [architecture, heads, kv_heads, linear_rope] = GetParam();
  auto config = tiny_config(architecture, heads, kv_heads, 16);
  if (linear_rope) config.rope_scaling = io::RopeScaling{"linear", 2.0};
  const auto lm = tiny_model(config, at::kFloat, at::kCPU, 5);
  const auto embeds = prompt_embeds(*lm, 9, 3);
  at::NoGradGuard no_grad;
  const int64_t steps = 6, capacity = 9 + steps;
  auto eager_cache = lm->make_cache(1, capacity);
  auto static_cache = lm->make_cache(1, capacity, /*zero_fill=*/true);
  lm->forward(embeds, eager_cache);
  lm->forward(embeds, static_cache);
  generation::StaticDecodeStep step(*lm, static_cache, /*use_graph=*/false);
  EXPECT_FALSE(step.graph_captured());
  at::manual_seed(8);
  const auto tokens = at::randint(config.vocab_size, {steps}, at::kLong);
  for (int64_t i = 0; i < steps; ++i) {
    const auto token = tokens.slice(0, i, i + 1);
    const auto expected = lm->logits(lm->forward(lm->embed(token.view({1, 1})), eager_cache).select(1, -1));
    const auto actual = step.step(token);
    ASSERT_EQ(actual.sizes(), expected.sizes());
    EXPECT_LT(rel_error(actual, expected), 1e-5) << "step " << i;
    EXPECT_EQ(static_cache.length(), eager_cache.length());
  }
  EXPECT_THROW(step.step(tokens.slice(0, 0, 1)), InvalidArgument);  // the cache is full
}

INSTANTIATE_TEST_SUITE_P(Shapes, StaticStep,
                         ::testing::Values(StaticCase{"InternLM2ForCausalLM", 4, 2, false},
                                           StaticCase{"LlamaForCausalLM", 3, 3, true},
                                           StaticCase{"InternLM2ForCausalLM", 6, 1, true}),
                         [](const auto& info) {
                           return std::get<0>(info.param).substr(0, 5) + "_H" + std::to_string(std::get<1>(info.param)) +
                                  "_KV" + std::to_string(std::get<2>(info.param)) +
                                  (std::get<3>(info.param) ? "_linear" : "");
                         });

TEST(StaticStep, RefusesWhatItCannotCapture) {
  auto config = tiny_config("LlamaForCausalLM", 2, 2, 16);
  config.rope_scaling = io::RopeScaling{"dynamic", 2.0};
  const auto lm = tiny_model(config, at::kFloat, at::kCPU, 1);
  EXPECT_TRUE(lm->static_decode_supported(512));
  EXPECT_FALSE(lm->static_decode_supported(513));  // the dynamic NTK base moves past 512
  auto long_cache = lm->make_cache(1, 600, true);
  EXPECT_THROW({ generation::StaticDecodeStep step(*lm, long_cache, false); }, UnsupportedError);
  auto cache = lm->make_cache(1, 20, true);
  EXPECT_THROW({ generation::StaticDecodeStep step(*lm, cache, /*use_graph=*/true); }, UnsupportedError);  // CPU model
  generation::StaticDecodeStep step(*lm, cache, false);
  EXPECT_THROW(step.step(at::zeros({2}, at::kLong)), InvalidArgument);
  EXPECT_THROW(step.step(at::zeros({1}, at::kInt)), InvalidArgument);
}

TEST(KVCacheWriteAt, WritesAtTheDevicePosition) {
  nn::KVCache cache(2, 1, 3, 8, 10, at::TensorOptions().dtype(at::kFloat), /*zero_fill=*/true);
  const auto k = at::randn({1, 3, 1, 8}), v = at::randn({1, 3, 1, 8});
  const auto [keys, values] = cache.write_at(1, k, v, at::full({1}, 6, at::kLong));
  EXPECT_EQ(keys.size(2), 10);
  EXPECT_TRUE(at::equal(keys.select(2, 6), k.select(2, 0)));
  EXPECT_TRUE(at::equal(values.select(2, 6), v.select(2, 0)));
  // Nothing else written (exact: a float sum over the buffer would depend on summation order).
  EXPECT_TRUE(at::equal(keys.index_fill(2, at::full({1}, 6, at::kLong), 0), at::zeros_like(keys)));
  EXPECT_EQ(cache.length(), 0);
  EXPECT_THROW(cache.write_at(2, k, v, at::full({1}, 0, at::kLong)), InvalidArgument);
  EXPECT_THROW(cache.write_at(0, at::randn({1, 3, 2, 8}), at::randn({1, 3, 2, 8}), at::full({1}, 0, at::kLong)),
               InvalidArgument);
  EXPECT_THROW(cache.write_at(0, k, v, at::full({1}, 0, at::kInt)), InvalidArgument);
}

// ---- CUDA (skipped without a device) ---------------------------------------------------------

class CudaDecodeGraph : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!kernels::cuda_graphs_built()) GTEST_SKIP() << "built without CUDA";
    if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
    kernels::set_cuda_kernels_enabled(true);
  }
  void TearDown() override { kernels::set_cuda_kernels_enabled(false); }
};

TEST_F(CudaDecodeGraph, ReplayEqualsTheSameStepRunEagerly) {
  for (const auto dtype : {at::kBFloat16, at::kFloat}) {  // kernel decode attention / ATen masked
    SCOPED_TRACE(::testing::Message() << "dtype " << dtype);
    const auto config = tiny_config("InternLM2ForCausalLM", 8, 2, 64);
    const auto lm = tiny_model(config, dtype, at::kCUDA, 21);
    const auto embeds = prompt_embeds(*lm, 37, 4);
    generation::GenerateOptions options;
    options.max_new_tokens = 23;
    const auto graph = generation::detail::generate_pipelined(*lm, embeds, {}, options, {}, DecodeMode::kGraph);
    const auto eager_static = generation::detail::generate_pipelined(*lm, embeds, {}, options, {}, DecodeMode::kStatic);
    // The same kernels on the same buffers: replaying must be exact.
    EXPECT_EQ(graph.tokens, eager_static.tokens);
    ASSERT_EQ(graph.tokens.size(), 23u);

    // Teacher-forced logits: graph replay vs the eager model.
    at::NoGradGuard no_grad;
    auto eager_cache = lm->make_cache(1, 60);
    auto graph_cache = lm->make_cache(1, 60, true);
    lm->forward(embeds, eager_cache);
    lm->forward(embeds, graph_cache);
    generation::StaticDecodeStep step(*lm, graph_cache, /*use_graph=*/true);
    const auto tokens = at::randint(config.vocab_size, {20}, at::TensorOptions().dtype(at::kLong).device(at::kCUDA));
    for (int64_t i = 0; i < 20; ++i) {
      const auto token = tokens.slice(0, i, i + 1);
      const auto expected = lm->logits(lm->forward(lm->embed_unchecked(token.view({1, 1})), eager_cache).select(1, -1));
      const auto actual = step.step(token).clone();
      EXPECT_TRUE(step.graph_captured());
      EXPECT_LT(rel_error(actual, expected), dtype == at::kFloat ? 1e-5 : 2e-2) << "step " << i;
    }
  }
}

TEST_F(CudaDecodeGraph, GenerateOnCudaMatchesThePlainLoopOnCpuInFloat32) {
  const auto config = tiny_config("LlamaForCausalLM", 4, 4, 64);
  const auto cpu = tiny_model(config, at::kFloat, at::kCPU, 9);
  const auto gpu = tiny_model(config, at::kFloat, at::kCUDA, 9);
  const auto embeds = prompt_embeds(*cpu, 11, 5);
  generation::GenerateOptions options;
  options.max_new_tokens = 12;
  options.sampling.repetition_penalty = 1.2;
  const auto expected = generation::generate(*cpu, embeds, {3, 4}, options);
  const auto actual = generation::generate(*gpu, embeds.to(at::kCUDA), {3, 4}, options);
  EXPECT_EQ(actual.tokens, expected.tokens);
  EXPECT_LT(rel_error(actual.first_logits, expected.first_logits), 1e-4);
}

}  // namespace
