// The bad-input catalogue at the facade (docs/reliability.md): options out of range, hostile
// text, oversized images, index files that do not fit, and more weights than memory. Every case is
// a typed internvl::Error whose message names what is wrong.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>

#include "internvl/internvl.h"
#include "io/memory_check.h"
#include "io/safetensors.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;
using namespace internvl;

namespace {

// Passes when fn throws exactly an E (or subclass) whose message contains `needle`.
template <typename E>
::testing::AssertionResult Throws(const std::function<void()>& fn, const std::string& needle) {
  try {
    fn();
  } catch (const E& e) {
    if (std::string(e.what()).find(needle) == std::string::npos) {
      return ::testing::AssertionFailure() << "message lacks '" << needle << "': " << e.what();
    }
    return ::testing::AssertionSuccess();
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "wrong exception type: " << e.what();
  }
  return ::testing::AssertionFailure() << "did not throw";
}

std::string first_image() {
  const auto images = internvl::testing::read_json((fs::path(internvl::testing::images_dir()) / "images.json").string());
  return (fs::path(internvl::testing::images_dir()) / images.at(0).at("file").get<std::string>()).string();
}

// Sets an environment variable for the scope.
struct ScopedEnv {
  std::string name;
  ScopedEnv(std::string n, const std::string& value) : name(std::move(n)) { ::setenv(name.c_str(), value.c_str(), 1); }
  ~ScopedEnv() { ::unsetenv(name.c_str()); }
};

class ChatBadInput : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    model_ = std::make_unique<Model>(Model::load(internvl::testing::fixture_path(GetParam())));
    request_.question = "Hello";
    request_.generation.max_new_tokens = 2;
  }
  std::unique_ptr<Model> model_;
  ChatRequest request_;
};

TEST_P(ChatBadInput, OptionsOutOfRangeNameTheOption) {
  const auto bad = [&](const std::function<void(ChatRequest&)>& edit, const std::string& name) {
    ChatRequest r = request_;
    r.generation.do_sample = true;
    edit(r);
    return Throws<InvalidArgument>([&] { model_->chat(r); }, name);
  };
  EXPECT_TRUE(bad([](ChatRequest& r) { r.generation.top_k = -1; }, "top_k"));
  EXPECT_TRUE(bad([](ChatRequest& r) { r.generation.temperature = -0.5; }, "temperature"));
  EXPECT_TRUE(bad([](ChatRequest& r) { r.generation.temperature = NAN; }, "temperature"));
  EXPECT_TRUE(bad([](ChatRequest& r) { r.generation.top_p = 0; }, "top_p"));
  EXPECT_TRUE(bad([](ChatRequest& r) { r.generation.top_p = -0.1; }, "top_p"));
  EXPECT_TRUE(bad([](ChatRequest& r) { r.generation.top_p = 1.0001; }, "top_p"));
  EXPECT_TRUE(bad([](ChatRequest& r) { r.generation.repetition_penalty = 0; }, "repetition_penalty"));
  EXPECT_TRUE(bad([](ChatRequest& r) { r.generation.max_new_tokens = -3; }, "max_new_tokens"));
  EXPECT_TRUE(bad([](ChatRequest& r) { r.generation.stop_strings = {""}; }, "stop_strings"));
  EXPECT_TRUE(bad(
      [](ChatRequest& r) {
        r.images = {Image::from_file(first_image())};
        r.max_tiles = -1;
      },
      "max_tiles"));
  EXPECT_TRUE(bad(
      [](ChatRequest& r) {
        r.images = {Image::from_file(first_image())};
        r.max_tiles = 1 << 30;
      },
      "max_tiles"));
  // Greedy decoding validates the sampling options too (they are still part of the request).
  ChatRequest greedy = request_;
  greedy.generation.top_p = 2;
  EXPECT_TRUE(Throws<InvalidArgument>([&] { model_->chat(greedy); }, "top_p"));
}

TEST_P(ChatBadInput, HostileText) {
  ChatRequest r = request_;
  // Invalid UTF-8 is refused by the tokenizer.
  r.question = std::string("caf\xC3(");
  EXPECT_TRUE(Throws<InvalidArgument>([&] { model_->chat(r); }, "UTF-8"));
  // Far over the context: refused before generation, naming the context.
  const auto config = internvl::testing::fixture_config(GetParam());
  const int context = config.at("llm_config").at("max_position_embeddings").get<int>();
  r.question.clear();
  for (int i = 0; i < context + 16; ++i) r.question += "word ";
  EXPECT_TRUE(Throws<InvalidArgument>([&] { model_->chat(r); }, "context"));
  // Empty text and text made only of special tokens are valid prompts (the official tokenizer
  // parses special tokens in user text too).
  r.question = "";
  EXPECT_EQ(model_->chat(r).output_ids.size() <= 2, true);
  r.question = "<s></s><|im_end|><|im_start|>";
  EXPECT_FALSE(model_->chat(r).input_ids.empty());
  // Image-context tokens typed into the text without images do not match the images.
  r.question = "<IMG_CONTEXT><IMG_CONTEXT>";
  EXPECT_TRUE(Throws<InvalidArgument>([&] { model_->chat(r); }, "image"));
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ChatBadInput,
                         ::testing::ValuesIn(internvl::testing::fixtures_with_architecture("InternVLChatModel")),
                         internvl::testing::FixtureName());
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(ChatBadInput);

class RetrievalBadInput : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { model_ = std::make_unique<Model>(Model::load(internvl::testing::fixture_path(GetParam()))); }
  std::unique_ptr<Model> model_;
};

TEST_P(RetrievalBadInput, OptionsAndText) {
  EmbedOptions options;
  options.batch_size = -2;
  EXPECT_TRUE(Throws<InvalidArgument>([&] { model_->embed_image({Image::from_file(first_image())}, options); },
                                      "batch_size"));
  EXPECT_TRUE(Throws<InvalidArgument>([&] { model_->embed_text({"a"}, options); }, "batch_size"));
  EXPECT_TRUE(Throws<InvalidArgument>([&] { model_->embed_text({std::string("\xFF\xFE")}); }, "UTF-8"));
  // Far over the 80-token context: truncated like the official tokenizer, same row as its prefix.
  std::string longer;
  for (int i = 0; i < 500; ++i) longer += "word ";
  const auto rows = model_->embed_text({longer, longer + "more words"});
  EXPECT_TRUE(rows.row(0).isApprox(rows.row(1), 1e-6f));
  EXPECT_EQ(model_->embed_text({"<s></s><unk>"}).rows(), 1);  // only special tokens
  EXPECT_TRUE(Throws<InvalidArgument>([&] { model_->classify({}, Matrix(), {}, 1); }, "class"));
}

TEST_P(RetrievalBadInput, ImagesAbovePixelLimitAreRefused) {
  LoadOptions options;
  options.max_image_pixels = 100;
  const auto small = Model::load(internvl::testing::fixture_path(GetParam()), options);
  EXPECT_TRUE(Throws<ImageError>([&] { small.embed_image({Image::from_file(first_image())}); }, "max_image_pixels"));
  const std::vector<uint8_t> rgb(11 * 10 * 3, 7);
  EXPECT_TRUE(Throws<ImageError>([&] { small.embed_image({Image::from_rgb(rgb.data(), 11, 10)}); }, "too large"));
  EXPECT_EQ(small.embed_image({Image::from_rgb(rgb.data(), 10, 10)}).rows(), 1);
}

TEST_P(RetrievalBadInput, IndexFilesThatDoNotFit) {
  const auto dir = fs::path(::testing::TempDir()) / ("internvl_bad_index_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const auto path = (dir / "index.safetensors").string();
  auto index = model_->create_index(EmbedMode::kC);
  index.add({"a", "b"}, model_->embed_text({"a cat", "a dog"}));
  index.save(path);
  EXPECT_EQ(Index::load(path).size(), 2);
  // Truncated: CheckpointError naming the file.
  const auto size = fs::file_size(path);
  fs::copy_file(path, dir / "truncated.safetensors");
  fs::resize_file(dir / "truncated.safetensors", size - 5);
  EXPECT_TRUE(Throws<CheckpointError>([&] { Index::load((dir / "truncated.safetensors").string()); }, "truncated"));
  // Another model's index: loads, but retrieving against it names both models.
  Index foreign("InternVLModel:0000000000000000", EmbedMode::kC, index.dim());
  foreign.add({"x"}, model_->embed_text({"x"}));
  foreign.save((dir / "foreign.safetensors").string());
  const auto loaded = Index::load((dir / "foreign.safetensors").string());
  EXPECT_TRUE(Throws<InvalidArgument>([&] { model_->retrieve({"a cat"}, loaded, 1); }, "0000000000000000"));
  // Wrong dimension: the file's metadata and its tensor disagree.
  io::SafetensorsFile file(path);
  std::map<std::string, std::string> meta = file.metadata();
  meta["dim"] = std::to_string(index.dim() + 1);
  nlohmann::json header = nlohmann::json::object();
  header["__metadata__"] = meta;
  const auto& view = file.tensor("embeddings");
  header["embeddings"] = {{"dtype", "F32"}, {"shape", view.shape}, {"data_offsets", {0, view.nbytes}}};
  std::string text = header.dump();
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((text.size() >> (8 * i)) & 0xff);
  bytes += text;
  bytes.append(reinterpret_cast<const char*>(view.data), view.nbytes);
  std::ofstream(dir / "wrong_dim.safetensors", std::ios::binary) << bytes;
  EXPECT_TRUE(Throws<CheckpointError>([&] { Index::load((dir / "wrong_dim.safetensors").string()); }, "embeddings"));
  // Searching with queries of another dimension.
  EXPECT_THROW(index.search(Matrix::Zero(1, index.dim() + 3), 1), InvalidArgument);
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, RetrievalBadInput,
                         ::testing::ValuesIn(internvl::testing::fixtures_with_architecture("InternVLModel")),
                         internvl::testing::FixtureName());
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(RetrievalBadInput);

// More weights than memory: a ResourceError before anything is allocated, naming the checkpoint
// and both figures; check_memory = false skips the check.
TEST(ResourceBounds, CheckpointLargerThanMemoryIsRefused) {
  const auto fixtures = internvl::testing::fixture_names();
  ASSERT_FALSE(fixtures.empty());
  const auto dir = internvl::testing::fixture_path(fixtures[0]);
  const auto estimate = io::estimate_load_memory(io::Checkpoint(dir), at::kFloat);
  ASSERT_GT(estimate.weights, 0u);
  {
    ScopedEnv limit("INTERNVL_MEMORY_LIMIT_BYTES", std::to_string(estimate.total() - 1));
    EXPECT_TRUE(Throws<ResourceError>([&] { Model::load(dir); }, dir));
    EXPECT_TRUE(Throws<ResourceError>([&] { Model::load(dir); }, "INTERNVL_MEMORY_LIMIT_BYTES"));
    LoadOptions bf16;
    bf16.dtype = DType::kBFloat16;  // about half the bytes: fits
    EXPECT_NO_THROW(Model::load(dir, bf16));
    LoadOptions unchecked;
    unchecked.check_memory = false;
    EXPECT_NO_THROW(Model::load(dir, unchecked));
  }
  {
    ScopedEnv limit("INTERNVL_MEMORY_LIMIT_BYTES", std::to_string(estimate.total()));
    EXPECT_NO_THROW(Model::load(dir));
  }
  {
    ScopedEnv limit("INTERNVL_MEMORY_LIMIT_BYTES", "lots");
    EXPECT_TRUE(Throws<InvalidArgument>([&] { Model::load(dir); }, "INTERNVL_MEMORY_LIMIT_BYTES"));
  }
}

// Decoders and features refused on purpose fail at load with UnsupportedError naming the field,
// and so does a checkpoint with modules this library does not implement (the -Flash router).
TEST(UnsupportedCheckpoints, AreRefusedEarlyNamingTheFieldOrTensor) {
  const auto fixtures = internvl::testing::fixtures_with_architecture("InternVLChatModel");
  if (fixtures.empty()) GTEST_SKIP() << "no chat fixture";
  const fs::path root = fs::path(::testing::TempDir()) / "internvl_unsupported";
  for (const auto& fixture : fixtures) {
    SCOPED_TRACE(fixture);
    const fs::path dir = root / fixture;
    fs::remove_all(dir);
    internvl::testing::copy_checkpoint(fixture, dir.string(), "",
                                       {{"pooling_before_gating.0.weight", at::ones({2, 2}, at::kBFloat16)}});
    EXPECT_TRUE(Throws<UnsupportedError>([&] { Model::load(dir.string()); }, "pooling_before_gating.0.weight"));
    const auto report = inspect_checkpoint(dir.string());
    EXPECT_FALSE(report.ok());

    internvl::testing::copy_checkpoint(fixture, dir.string());  // the plain copy loads
    EXPECT_NO_THROW(Model::load(dir.string()));
    const auto config_path = (dir / "config.json").string();
    const auto original = internvl::testing::read_json(config_path);
    const auto write_config = [&](const nlohmann::json& config) { std::ofstream(config_path) << config.dump(2); };
    for (const auto& refused : {"Phi3ForCausalLM", "Qwen3MoeForCausalLM", "GptOssForCausalLM", "InternLM3ForCausalLM"}) {
      auto config = original;
      config["llm_config"]["architectures"] = {refused};
      write_config(config);
      EXPECT_TRUE(Throws<UnsupportedError>([&] { Model::load(dir.string()); }, "architectures"));
    }
    const auto arch = original.at("llm_config").at("architectures").at(0).get<std::string>();
    if (arch.rfind("Qwen", 0) == 0) {
      auto config = original;
      config["llm_config"]["use_sliding_window"] = true;
      write_config(config);
      EXPECT_TRUE(Throws<UnsupportedError>([&] { Model::load(dir.string()); }, "use_sliding_window"));
    }
    write_config(original);
  }
  fs::remove_all(root);
}

}  // namespace
