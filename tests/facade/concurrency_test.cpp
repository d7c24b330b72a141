// Thread safety of a loaded Model: 4 threads calling embed_image / embed_text / chat on one shared
// model must get exactly what one thread gets. What is shared (read-only after load): weights,
// configs, tokenizer; what is per call: preprocessed pixels, KV cache, sampler RNG, stream decoder.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "internvl/internvl.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;
using namespace internvl;

namespace {

constexpr int kThreads = 4;
constexpr int kRounds = 3;

std::string image_path(const std::string& file) { return (fs::path(internvl::testing::images_dir()) / file).string(); }

// Runs body(thread, round) on kThreads threads at once; returns the first failure message.
template <typename Body>
std::string run_concurrently(Body body) {
  std::atomic<int> ready{0};
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      ++ready;
      while (ready.load() < kThreads) std::this_thread::yield();  // start together
      try {
        for (int round = 0; round < kRounds; ++round) body(t, round);
      } catch (const std::exception& e) {
        errors[t] = e.what();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (const auto& e : errors) {
    if (!e.empty()) return e;
  }
  return "";
}

TEST(Concurrency, RetrievalEmbeddingsEqualSingleThreaded) {
  const auto fixtures = internvl::testing::fixtures_with_architecture("InternVLModel");
  if (fixtures.empty()) GTEST_SKIP() << "no InternVLModel fixture";
  const auto model = Model::load(internvl::testing::fixture_path(fixtures[0]));
  const auto ref = internvl::testing::fixture_reference(fixtures[0]);
  std::vector<Image> images;
  for (const auto& image : ref.at("inputs").at("images")) {
    images.push_back(Image::from_file(image_path(image.at("file").get<std::string>())));
  }
  std::vector<std::string> captions;
  for (const auto& caption : ref.at("inputs").at("captions")) captions.push_back(caption.at("text").get<std::string>());
  ASSERT_FALSE(images.empty());
  ASSERT_FALSE(captions.empty());
  EmbedOptions g;
  g.mode = EmbedMode::kG;
  // Single-threaded results first.
  const Matrix image_c = model.embed_image(images);
  const Matrix image_g = model.embed_image(images, g);
  const Matrix text = model.embed_text(captions);

  std::vector<std::atomic<int>> mismatches(3);
  const auto error = run_concurrently([&](int thread, int round) {
    // Threads interleave different operations so that they overlap.
    switch ((thread + round) % 3) {
      case 0: mismatches[0] += model.embed_image(images) != image_c; break;
      case 1: mismatches[1] += model.embed_image(images, g) != image_g; break;
      default: mismatches[2] += model.embed_text(captions) != text; break;
    }
  });
  EXPECT_EQ(error, "");
  EXPECT_EQ(mismatches[0].load(), 0) << "embed_image (C) differs from the single-threaded result";
  EXPECT_EQ(mismatches[1].load(), 0) << "embed_image (G) differs from the single-threaded result";
  EXPECT_EQ(mismatches[2].load(), 0) << "embed_text differs from the single-threaded result";
}

TEST(Concurrency, ChatEqualsSingleThreaded) {
  const auto fixtures = internvl::testing::fixtures_with_architecture("InternVLChatModel");
  if (fixtures.empty()) GTEST_SKIP() << "no InternVLChatModel fixture";
  for (const auto& fixture : fixtures) {
    SCOPED_TRACE(fixture);
    const auto model = Model::load(internvl::testing::fixture_path(fixture));
    const auto ref = internvl::testing::fixture_reference(fixture);
    // One greedy and one sampled request per conversation with an image or without.
    std::vector<ChatRequest> requests;
    for (const auto& conversation : ref.at("inputs").at("conversations")) {
      if (!conversation.at("history_in").is_null()) continue;
      ChatRequest request;
      request.question = conversation.at("question").get<std::string>();
      for (const auto& image : internvl::testing::conversation_images(conversation)) {
        request.images.push_back(Image::from_file(image_path(image)));
      }
      request.generation.max_new_tokens = ref.at("generation").at("max_new_tokens").get<int>();
      requests.push_back(request);
      request.generation.do_sample = true;
      request.generation.top_k = 20;
      request.generation.seed = 1234 + requests.size();
      requests.push_back(request);
    }
    ASSERT_FALSE(requests.empty());
    std::vector<ChatResult> expected;
    for (const auto& request : requests) expected.push_back(model.chat(request));

    std::atomic<int> mismatches{0}, calls{0};
    const auto error = run_concurrently([&](int thread, int round) {
      const std::size_t i = static_cast<std::size_t>(thread + round * kThreads) % requests.size();
      std::string streamed;
      const auto result = model.chat(requests[i], [&](const std::string& text) {
        streamed += text;
        return true;
      });
      ++calls;
      if (result.output_ids != expected[i].output_ids || result.response != expected[i].response ||
          result.first_logits != expected[i].first_logits || result.input_ids != expected[i].input_ids) {
        ++mismatches;
      }
    });
    EXPECT_EQ(error, "");
    EXPECT_EQ(calls.load(), kThreads * kRounds);
    EXPECT_EQ(mismatches.load(), 0) << "chat results differ from the single-threaded ones";
  }
}

}  // namespace
