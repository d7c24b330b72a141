// inspect_checkpoint against what Model::load actually finds, for every fixture, and on folders
// broken on purpose (a tensor removed, config or tokenizer missing, an unknown template).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "internvl/error.h"
#include "internvl/inspect.h"
#include "internvl/model.h"
#include "io/safetensors.h"
#include "support/fixtures.h"
#include "support/tool_runner.h"

namespace fs = std::filesystem;

namespace {

bool mentions(const std::vector<std::string>& lines, const std::string& needle) {
  return std::any_of(lines.begin(), lines.end(),
                     [&](const std::string& line) { return line.find(needle) != std::string::npos; });
}

// The first checkpoint key the loaded model consumes (not one of its unused tensors).
std::string a_used_key(const std::string& fixture, const internvl::ModelInfo& info) {
  const internvl::io::Checkpoint checkpoint(internvl::testing::fixture_path(fixture));
  for (const auto& name : checkpoint.names()) {
    if (std::find(info.unused_weights.begin(), info.unused_weights.end(), name) == info.unused_weights.end()) {
      return name;
    }
  }
  return "";
}

class InspectFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(InspectFixture, AgreesWithLoading) {
  const std::string dir = internvl::testing::fixture_path(GetParam());
  const auto report = internvl::inspect_checkpoint(dir);
  const auto model = internvl::Model::load(dir);
  for (const auto& p : report.problems) ADD_FAILURE() << p;
  EXPECT_TRUE(report.ok());
  EXPECT_EQ(report.architecture, model.info().architecture);
  EXPECT_EQ(report.language_model, model.info().language_model);
  EXPECT_EQ(report.num_parameters, model.info().num_parameters);
  EXPECT_EQ(report.unexpected, model.info().unused_weights);
  EXPECT_TRUE(report.missing.empty());
  EXPECT_TRUE(report.mismatched.empty());
  EXPECT_TRUE(report.has_tokenizer);

  const internvl::io::Checkpoint checkpoint(dir);
  EXPECT_EQ(report.checkpoint_tensors, checkpoint.names().size());
  uint64_t counted = 0;
  for (const auto& [dtype, count] : report.checkpoint_dtypes) counted += count;
  EXPECT_EQ(counted, report.checkpoint_tensors);

  // Loading converts one used tensor at a time, staged in float32.
  uint64_t largest_used = 0;
  const auto& unused = model.info().unused_weights;
  for (const auto& name : checkpoint.names()) {
    if (std::find(unused.begin(), unused.end(), name) != unused.end()) continue;
    largest_used = std::max<uint64_t>(largest_used, checkpoint.tensor(name).numel());
  }

  // Every dtype x device once; weights scale with the element size.
  ASSERT_EQ(report.memory.size(), 6u);
  for (const auto& m : report.memory) {
    const uint64_t element = m.dtype == internvl::DType::kFloat32 ? 4 : 2;
    EXPECT_EQ(m.weight_bytes, report.num_parameters * element);
    if (m.device == internvl::Device::kCPU) {
      EXPECT_GE(m.host_peak_bytes, m.weight_bytes + m.kv_cache_bytes);
      EXPECT_EQ(m.device_bytes, 0u);
    } else {
      EXPECT_EQ(m.device_bytes, m.weight_bytes + m.kv_cache_bytes);
      EXPECT_EQ(m.host_peak_bytes, largest_used * (4 + element));
    }
  }
  if (model.info().architecture == "InternVLChatModel") {
    EXPECT_TRUE(report.template_supported);
    EXPECT_EQ(report.chat_template, model.chat_template());
    EXPECT_GT(report.memory.front().kv_cache_bytes, 0u);
  }
}

TEST_P(InspectFixture, MissingTensorIsNamed) {
  const auto model = internvl::Model::load(internvl::testing::fixture_path(GetParam()));
  const std::string dropped = a_used_key(GetParam(), model.info());
  ASSERT_FALSE(dropped.empty());
  const std::string copy = internvl::testing::unique_temp_path("inspect", "missing");
  internvl::testing::copy_checkpoint(GetParam(), copy, dropped);

  const auto report = internvl::inspect_checkpoint(copy);
  EXPECT_FALSE(report.ok());
  EXPECT_EQ(report.missing, std::vector<std::string>{dropped});
  EXPECT_TRUE(mentions(report.problems, dropped));
  // Loading refuses the same folder with the same key in its message.
  try {
    internvl::Model::load(copy);
    ADD_FAILURE() << "Model::load accepted a checkpoint without " << dropped;
  } catch (const internvl::CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find(dropped), std::string::npos) << e.what();
  }
  fs::remove_all(copy);
}

TEST_P(InspectFixture, MissingConfigAndTokenizerAreProblems) {
  const std::string copy = internvl::testing::unique_temp_path("inspect", "files");
  internvl::testing::copy_checkpoint(GetParam(), copy);
  ASSERT_TRUE(internvl::inspect_checkpoint(copy).ok());

  const auto ok = internvl::inspect_checkpoint(copy);
  EXPECT_TRUE(ok.has_tokenizer);
  EXPECT_FALSE(ok.tokenizer.empty());
  // Whichever tokenizer files the fixture has (SentencePiece or byte-level BPE).
  for (const char* file : {"tokenizer.model", "vocab.json", "merges.txt", "tokenizer.json"}) {
    fs::remove(fs::path(copy) / file);
  }
  auto report = internvl::inspect_checkpoint(copy);
  EXPECT_FALSE(report.has_tokenizer);
  EXPECT_TRUE(mentions(report.problems, "tokenizer"));

  fs::remove(fs::path(copy) / "config.json");
  report = internvl::inspect_checkpoint(copy);
  EXPECT_TRUE(mentions(report.problems, "config.json"));
  EXPECT_EQ(report.num_parameters, 0u);
  EXPECT_GT(report.checkpoint_tensors, 0u);  // the weights are still described
  fs::remove_all(copy);
}

TEST_P(InspectFixture, UnknownTemplateIsAProblem) {
  auto config = internvl::testing::fixture_config(GetParam());
  if (!config.contains("template")) GTEST_SKIP() << "not a chat checkpoint";
  const std::string copy = internvl::testing::unique_temp_path("inspect", "template");
  internvl::testing::copy_checkpoint(GetParam(), copy);
  config["template"] = "no-such-template";
  std::ofstream(fs::path(copy) / "config.json") << config.dump(2);
  const auto report = internvl::inspect_checkpoint(copy);
  EXPECT_FALSE(report.template_supported);
  EXPECT_TRUE(mentions(report.problems, "no-such-template"));
  fs::remove_all(copy);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, InspectFixture, ::testing::ValuesIn(internvl::testing::fixture_names()),
                         internvl::testing::FixtureName());

TEST(Inspect, NotADirectory) {
  const auto report = internvl::inspect_checkpoint("/nonexistent/internvl-model");
  EXPECT_FALSE(report.ok());
  EXPECT_TRUE(mentions(report.problems, "/nonexistent/internvl-model"));
}

}  // namespace
