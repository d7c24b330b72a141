// The internvl-inspect tool as a user runs it: exit status and what it prints.
#include <gtest/gtest.h>

#include <filesystem>

#include "internvl/model.h"
#include "io/safetensors.h"
#include "support/fixtures.h"
#include "support/tool_runner.h"

namespace {

using internvl::testing::describe;

std::string tool_path() {
  return internvl::testing::example_tool_path("INTERNVL_INSPECT_TOOL", "examples/inspect/internvl-inspect");
}

bool contains(const std::string& text, const std::string& needle) { return text.find(needle) != std::string::npos; }

class InspectTool : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!internvl::testing::is_executable(tool_path())) GTEST_SKIP() << "internvl-inspect not built";
  }
};

TEST_P(InspectTool, CompleteFolderExitsZero) {
  const std::string dir = internvl::testing::fixture_path(GetParam());
  const auto run = internvl::testing::run_tool(tool_path(), {dir});
  ASSERT_EQ(run.status, 0) << describe(run);
  const auto model = internvl::Model::load(dir);
  EXPECT_TRUE(contains(run.out, model.info().architecture)) << run.out;
  EXPECT_TRUE(contains(run.out, std::to_string(model.info().num_parameters) + " in the model")) << run.out;
  EXPECT_TRUE(contains(run.out, "OK")) << run.out;
}

TEST_P(InspectTool, IncompleteFolderExitsOneAndNamesTheTensor) {
  const auto model = internvl::Model::load(internvl::testing::fixture_path(GetParam()));
  const internvl::io::Checkpoint checkpoint(internvl::testing::fixture_path(GetParam()));
  std::string dropped;
  for (const auto& name : checkpoint.names()) {
    const auto& unused = model.info().unused_weights;
    if (std::find(unused.begin(), unused.end(), name) == unused.end()) {
      dropped = name;
      break;
    }
  }
  const std::string copy = internvl::testing::unique_temp_path("inspect_tool", "missing");
  internvl::testing::copy_checkpoint(GetParam(), copy, dropped);
  const auto run = internvl::testing::run_tool(tool_path(), {copy});
  EXPECT_EQ(run.status, 1) << describe(run);
  EXPECT_TRUE(contains(run.out, "missing tensors (1)")) << run.out;
  EXPECT_TRUE(contains(run.out, dropped)) << run.out;
  std::filesystem::remove_all(copy);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, InspectTool, ::testing::ValuesIn(internvl::testing::fixture_names()),
                         internvl::testing::FixtureName());

TEST(InspectToolUsage, NoFolderIsAUsageError) {
  if (!internvl::testing::is_executable(tool_path())) GTEST_SKIP() << "internvl-inspect not built";
  EXPECT_EQ(internvl::testing::run_tool(tool_path(), {}).status, 2);
  EXPECT_EQ(internvl::testing::run_tool(tool_path(), {"--bogus", "x"}).status, 2);
  const auto run = internvl::testing::run_tool(tool_path(), {"/nonexistent/folder"});
  EXPECT_EQ(run.status, 1) << describe(run);
  EXPECT_TRUE(contains(run.out, "/nonexistent/folder")) << run.out;
}

}  // namespace
