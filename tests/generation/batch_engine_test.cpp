// The batch engine's exactness (issue 12): on every chat fixture (CPU, float32), a request gives
// the same tokens, text, finish reason and first logits whether it runs alone or decodes together
// with others of different lengths that join at different steps, some of them cancelled midway.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <random>
#include <set>

#include "internvl/internvl.h"
#include "model_impl.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;
using namespace internvl;

namespace {

struct Outcome {
  ChatResult result;
  std::string streamed;
};

// Words of the fixture's own reference questions, so prompts tokenise like real ones.
std::vector<std::string> reference_words(const nlohmann::json& reference) {
  std::set<std::string> words;
  for (const auto& conversation : reference.at("inputs").at("conversations")) {
    std::string question = conversation.at("question").get<std::string>(), word;
    for (char c : question + " ") {
      if (c == ' ' || c == '\n') {
        if (!word.empty() && word.find('<') == std::string::npos) words.insert(word);
        word.clear();
      } else {
        word += c;
      }
    }
  }
  return {words.begin(), words.end()};
}

class BatchEngineExactness : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    fixture_ = GetParam();
    LoadOptions options;
    options.max_batch_size = 8;
    model_ = std::make_unique<Model>(Model::load(internvl::testing::fixture_path(fixture_), options));
    const auto reference = internvl::testing::fixture_reference(fixture_);
    words_ = reference_words(reference);
    std::set<std::string> images;
    for (const auto& conversation : reference.at("inputs").at("conversations")) {
      for (const auto& image : internvl::testing::conversation_images(conversation)) images.insert(image);
    }
    for (const auto& image : images) images_.push_back((fs::path(internvl::testing::images_dir()) / image).string());
    ASSERT_FALSE(words_.empty());
  }

  ChatRequest random_request(std::mt19937& rng) const {
    ChatRequest request;
    const int words = std::uniform_int_distribution<int>(1, 24)(rng);
    for (int i = 0; i < words; ++i) request.question += (i ? " " : "") + words_[rng() % words_.size()];
    if (!images_.empty() && rng() % 3 == 0) {
      const int count = 1 + static_cast<int>(rng() % 2);
      for (int i = 0; i < count; ++i) request.images.push_back(Image::from_file(images_[rng() % images_.size()]));
      request.max_tiles = 1 + static_cast<int>(rng() % 2);
    }
    auto& g = request.generation;
    g.max_new_tokens = std::uniform_int_distribution<int>(1, 24)(rng);
    if (rng() % 3 == 0) {
      g.do_sample = true;
      g.temperature = 0.7 + 0.1 * static_cast<double>(rng() % 6);
      g.top_k = rng() % 2 ? 0 : 20;
      g.top_p = rng() % 2 ? 1.0 : 0.9;
      g.seed = rng();
    }
    if (rng() % 4 == 0) g.repetition_penalty = 1.3;
    if (rng() % 4 == 0) g.stop_strings = {std::string(1, "aeiost"[rng() % 6])};
    return request;
  }

  Outcome alone(const ChatRequest& request) const {
    Outcome outcome;
    outcome.result = model_->chat(request, [&](const std::string& text) {
      outcome.streamed += text;
      return true;
    });
    return outcome;
  }

  const generation::Engine& engine() const { return model_->impl().chat_pipeline->engine(); }

  std::string fixture_;
  std::unique_ptr<Model> model_;
  std::vector<std::string> words_;
  std::vector<std::string> images_;
};

void expect_same(const Outcome& batched, const Outcome& single, const std::string& what) {
  SCOPED_TRACE(what);
  EXPECT_EQ(batched.result.output_ids, single.result.output_ids);
  EXPECT_EQ(batched.result.response, single.result.response);
  EXPECT_EQ(batched.streamed, single.streamed);
  EXPECT_EQ(batched.result.finish_reason, single.result.finish_reason);
  EXPECT_EQ(batched.result.input_ids, single.result.input_ids);
  EXPECT_EQ(batched.result.first_logits, single.result.first_logits);  // bit for bit
}

void expect_prefix(const Outcome& cancelled, const Outcome& single, const std::string& what) {
  SCOPED_TRACE(what);
  const auto& ids = cancelled.result.output_ids;
  const auto& full = single.result.output_ids;
  ASSERT_LE(ids.size(), full.size());
  EXPECT_TRUE(std::equal(ids.begin(), ids.end(), full.begin()));
  EXPECT_EQ(single.streamed.compare(0, cancelled.streamed.size(), cancelled.streamed), 0);
}

// Waves of requests joining a running batch at chosen steps: the first request's stream
// callback (on the engine thread) holds the engine still while the next wave is submitted, so
// the wave joins at exactly that step. One request of a wave may be cancelled while held.
TEST_P(BatchEngineExactness, JoiningAtDifferentStepsChangesNoToken) {
  std::mt19937 rng(1234);
  for (int trial = 0; trial < 5; ++trial) {
    SCOPED_TRACE("trial " + std::to_string(trial));
    const int n = std::uniform_int_distribution<int>(1, 8)(rng);
    std::vector<ChatRequest> requests;
    for (int i = 0; i < n; ++i) requests.push_back(random_request(rng));
    // The leader runs long, greedy, without stop strings, so that the waves find it running.
    requests[0].generation = GenerationOptions();
    requests[0].generation.max_new_tokens = 40;
    std::vector<Outcome> single;
    for (const auto& request : requests) single.push_back(alone(request));

    std::vector<Outcome> batched(n);
    std::vector<ChatHandle> handles(n);
    std::mutex mutex;
    std::condition_variable changed;
    int leader_calls = 0, released_through = 0;
    std::set<int> pause_at;  // leader callback counts at which a wave joins
    for (int next = 1, at = 0; next < n; next += 1 + static_cast<int>(rng() % 3)) {
      at += 1 + static_cast<int>(rng() % 6);
      pause_at.insert(at);
    }
    handles[0] = model_->submit_chat(requests[0], [&](const std::string& text) {
      batched[0].streamed += text;
      std::unique_lock<std::mutex> lock(mutex);
      ++leader_calls;
      changed.notify_all();
      // Held at a pause until the test thread has queued that wave.
      if (pause_at.count(leader_calls)) changed.wait(lock, [&] { return released_through >= leader_calls; });
      return true;
    });
    auto submit = [&](int i) {
      handles[i] = model_->submit_chat(requests[i], [&, i](const std::string& text) {
        batched[i].streamed += text;
        return true;
      });
    };
    int next = 1;
    std::set<int> cancelled;
    for (const int pause : pause_at) {
      if (next >= n) break;
      std::unique_lock<std::mutex> lock(mutex);
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      while (leader_calls < pause && !handles[0].ready() && std::chrono::steady_clock::now() < deadline) {
        changed.wait_for(lock, std::chrono::milliseconds(5));
      }
      if (leader_calls < pause) break;  // the leader ended first: the rest run below
      lock.unlock();
      // While the engine is held: cancel one request that is running (it stops at the next
      // step, or ends normally in this one), then queue the wave.
      if (trial % 2 == 1 && next > 1) {
        const int victim = 1 + static_cast<int>(rng() % (next - 1));
        if (!handles[victim].ready() && !cancelled.count(victim)) {
          handles[victim].cancel();
          cancelled.insert(victim);
        }
      }
      const int size = std::min(n - next, 1 + static_cast<int>(rng() % 3));
      for (int i = next; i < next + size; ++i) submit(i);
      next += size;
      lock.lock();
      released_through = pause;
      changed.notify_all();
    }
    {
      std::lock_guard<std::mutex> lock(mutex);
      released_through = 1 << 30;
      changed.notify_all();
    }
    for (int i = next; i < n; ++i) submit(i);
    for (int i = 0; i < n; ++i) {
      batched[i].result = handles[i].get();
      if (cancelled.count(i) && batched[i].result.finish_reason == FinishReason::kCancelled) {
        expect_prefix(batched[i], single[i], "cancelled request " + std::to_string(i));
      } else {
        expect_same(batched[i], single[i], "request " + std::to_string(i));
      }
    }
  }
  EXPECT_GE(engine().stats().max_active, 2) << "no two requests ever decoded together";
}

// chat_batch: every request at once, with their images encoded together; a callback that stops
// its own request midway leaves the others untouched.
TEST_P(BatchEngineExactness, ChatBatchEqualsOneByOne) {
  std::mt19937 rng(99);
  for (int trial = 0; trial < 4; ++trial) {
    const int n = std::uniform_int_distribution<int>(2, 8)(rng);
    std::vector<ChatRequest> requests;
    for (int i = 0; i < n; ++i) requests.push_back(random_request(rng));
    std::vector<Outcome> single;
    for (const auto& request : requests) single.push_back(alone(request));
    std::vector<Outcome> batched(n);
    std::vector<Model::StreamCallback> callbacks;
    const int stopper = static_cast<int>(rng() % n);
    for (int i = 0; i < n; ++i) {
      callbacks.push_back([&, i](const std::string& text) {
        batched[i].streamed += text;
        return !(i == stopper && batched[i].streamed.size() >= 3);
      });
    }
    const auto results = model_->chat_batch(requests, callbacks);
    ASSERT_EQ(results.size(), requests.size());
    for (int i = 0; i < n; ++i) {
      batched[i].result = results[i];
      if (i == stopper && results[i].finish_reason == FinishReason::kCancelled) {
        expect_prefix(batched[i], single[i], "stopped request");
      } else {
        expect_same(batched[i], single[i], "request " + std::to_string(i));
      }
    }
  }
  EXPECT_GE(engine().stats().max_active, 2);
}

TEST_P(BatchEngineExactness, BadRequestsFailAloneAndTyped) {
  ChatRequest good;
  good.question = words_.front();
  good.generation.max_new_tokens = 3;
  ChatRequest bad = good;
  bad.generation.max_new_tokens = 0;
  EXPECT_THROW(model_->chat_batch({good, bad}), InvalidArgument);
  ChatRequest missing = good;
  missing.images.push_back(Image::from_file("/nonexistent/picture.jpg"));
  try {
    model_->submit_chat(missing);
    FAIL() << "a missing image was accepted";
  } catch (const ImageError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/picture.jpg"), std::string::npos) << e.what();
  }
  // A callback that throws fails its own request only.
  if (alone(good).streamed.empty()) return;
  auto throwing = model_->submit_chat(good, [](const std::string&) -> bool { throw std::runtime_error("callback broke"); });
  auto fine = model_->submit_chat(good);
  EXPECT_THROW(throwing.get(), std::runtime_error);
  EXPECT_EQ(fine.get().output_ids, model_->chat(good).output_ids);
  EXPECT_THROW(ChatHandle().get(), InvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, BatchEngineExactness,
                         ::testing::ValuesIn(internvl::testing::fixtures_with_architecture("InternVLChatModel")),
                         internvl::testing::FixtureName());
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(BatchEngineExactness);

}  // namespace
