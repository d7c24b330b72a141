// The tools' error messages speak of their flags, not of the library's option fields: a setting
// the library refuses (here --device cuda on a machine without a GPU, a memory limit too small
// for the weights) is named as the user gave it, with the exit status the READMEs document.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <ostream>
#include <string>
#include <vector>

#include "internvl/internvl.h"
#include "support/fixtures.h"
#include "support/tool_runner.h"

namespace {

using internvl::testing::describe;

bool contains(const std::string& text, const std::string& needle) { return text.find(needle) != std::string::npos; }

struct ToolCase {
  const char* name;          // test name
  const char* env;           // override of the tool's path
  const char* relative;      // the tool below the build folder
  const char* architecture;  // the checkpoints it runs
  std::vector<std::string> args;  // after -m DIR
};

// gtest prints the tool's name, not the struct's bytes.
void PrintTo(const ToolCase& tool, std::ostream* out) { *out << tool.name; }

std::vector<ToolCase> tool_cases() {
  return {{"chat", "INTERNVL_CHAT_TOOL", "examples/chat/internvl-chat", "InternVLChatModel", {"-p", "hi"}},
          {"retrieve", "INTERNVL_RETRIEVE_TOOL", "examples/retrieve/internvl-retrieve", "InternVLModel", {}},
          {"vision", "INTERNVL_VISION_TOOL", "examples/vision/internvl-vision", "InternVLChatModel", {}},
          {"server", "INTERNVL_SERVER_TOOL", "examples/server/internvl-server", "InternVLChatModel", {"--port", "0"}}};
}

class ToolUserTerms : public ::testing::TestWithParam<ToolCase> {
 protected:
  void SetUp() override {
    tool_ = internvl::testing::example_tool_path(GetParam().env, GetParam().relative);
    if (!internvl::testing::is_executable(tool_)) GTEST_SKIP() << tool_ << " not built";
    const auto fixtures = internvl::testing::fixtures_with_architecture(GetParam().architecture);
    if (fixtures.empty()) GTEST_SKIP() << "no " << GetParam().architecture << " fixture";
    model_dir_ = internvl::testing::fixture_path(fixtures.front());
  }

  // The tool's command line: its subcommand, -m DIR, `extra`, its own arguments.
  std::vector<std::string> args(const std::vector<std::string>& extra) const {
    std::vector<std::string> a;
    const std::string name = GetParam().name;
    if (name == "retrieve") a = {"embed"};
    a.insert(a.end(), {"-m", model_dir_});
    a.insert(a.end(), extra.begin(), extra.end());
    if (name == "retrieve") a.insert(a.end(), {"--texts", "a photo"});
    if (name == "vision") a.push_back(internvl::testing::images_dir() + "/" + first_image());
    a.insert(a.end(), GetParam().args.begin(), GetParam().args.end());
    return a;
  }

  // An image a fixture's references were made from (vision needs one to run).
  static std::string first_image() {
    for (const auto& fixture : internvl::testing::fixture_names()) {
      const auto ref = internvl::testing::fixture_reference(fixture);
      if (ref.contains("inputs") && ref["inputs"].contains("images") && !ref["inputs"]["images"].empty())
        return ref["inputs"]["images"][0]["file"].get<std::string>();
    }
    return "missing.jpg";
  }

  std::string tool_, model_dir_;
};

TEST_P(ToolUserTerms, DeviceCudaWithoutGpuNamesTheFlag) {
  internvl::LoadOptions cuda;
  cuda.device = internvl::Device::kCUDA;
  try {
    internvl::Model::load(model_dir_, cuda);
    GTEST_SKIP() << "this machine has a CUDA device";
  } catch (const internvl::Error&) {
  }
  const auto run = internvl::testing::run_tool(tool_, args({"--device", "cuda"}));
  EXPECT_EQ(run.status, 1) << describe(run);
  EXPECT_TRUE(contains(run.err, "--device cuda: no CUDA device is available")) << describe(run);
  EXPECT_FALSE(contains(run.err, "LoadOptions")) << describe(run);
}

// The library's memory check, made to fail with its environment override: the advice names
// --dtype and the variable, not LoadOptions fields.
TEST_P(ToolUserTerms, MemoryRefusalNamesFlags) {
  ::setenv("INTERNVL_MEMORY_LIMIT_BYTES", "1", 1);
  const auto run = internvl::testing::run_tool(tool_, args({}));
  ::unsetenv("INTERNVL_MEMORY_LIMIT_BYTES");
  EXPECT_EQ(run.status, 1) << describe(run);
  EXPECT_TRUE(contains(run.err, "--dtype")) << describe(run);
  EXPECT_TRUE(contains(run.err, "INTERNVL_MEMORY_LIMIT_BYTES")) << describe(run);
  EXPECT_FALSE(contains(run.err, "LoadOptions")) << describe(run);
}

INSTANTIATE_TEST_SUITE_P(Tools, ToolUserTerms, ::testing::ValuesIn(tool_cases()),
                         [](const ::testing::TestParamInfo<ToolCase>& info) { return std::string(info.param.name); });

// internvl-chat on a retrieval checkpoint: the message names --model and the folder.
TEST(ToolUserTermsChat, RetrievalCheckpointNamesTheModelFlag) {
  const std::string tool = internvl::testing::example_tool_path("INTERNVL_CHAT_TOOL", "examples/chat/internvl-chat");
  if (!internvl::testing::is_executable(tool)) GTEST_SKIP() << tool << " not built";
  const auto fixtures = internvl::testing::fixtures_with_architecture("InternVLModel");
  if (fixtures.empty()) GTEST_SKIP() << "no InternVLModel fixture";
  const std::string dir = internvl::testing::fixture_path(fixtures.front());
  const auto run = internvl::testing::run_tool(tool, {"-m", dir, "-p", "hi"});
  EXPECT_EQ(run.status, 1) << describe(run);
  EXPECT_TRUE(contains(run.err, "--model " + dir + " is an ")) << describe(run);
  EXPECT_FALSE(contains(run.err, "chat_template")) << describe(run);
}

}  // namespace
