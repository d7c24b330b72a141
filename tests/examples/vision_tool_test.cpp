// The internvl-vision tool as a user runs it: exit status, --help, --version, -m.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "internvl/version.h"
#include "support/fixtures.h"
#include "support/tool_runner.h"

namespace {

using internvl::testing::describe;
using internvl::testing::run_tool;

std::string tool_path() {
  return internvl::testing::example_tool_path("INTERNVL_VISION_TOOL", "examples/vision/internvl-vision");
}

bool contains(const std::string& text, const std::string& needle) { return text.find(needle) != std::string::npos; }

// Fixtures whose references were made from images (the model checkpoints).
std::vector<std::string> image_fixtures() {
  std::vector<std::string> names;
  for (const auto& name : internvl::testing::fixture_names()) {
    const auto ref = internvl::testing::fixture_reference(name);
    if (ref.contains("inputs") && ref["inputs"].contains("images") && !ref["inputs"]["images"].empty()) {
      names.push_back(name);
    }
  }
  return names;
}

// The first image the fixture's references were made from.
std::string first_image(const std::string& fixture) {
  const auto ref = internvl::testing::fixture_reference(fixture);
  return (std::filesystem::path(internvl::testing::images_dir()) / ref["inputs"]["images"][0]["file"].get<std::string>())
      .string();
}

class VisionTool : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!internvl::testing::is_executable(tool_path())) GTEST_SKIP() << "internvl-vision not built";
  }
};

// -m is --model; the run prints one line per image.
TEST_P(VisionTool, ShortModelFlagRunsTheTower) {
  const std::string dir = internvl::testing::fixture_path(GetParam());
  const std::string image = first_image(GetParam());
  for (const std::string flag : {"-m", "--model"}) {
    const auto run = run_tool(tool_path(), {flag, dir, "--device", "cpu", image});
    ASSERT_EQ(run.status, 0) << describe(run);
    EXPECT_TRUE(contains(run.out, image + ": ")) << run.out;
    EXPECT_TRUE(contains(run.out, "tile(s) -> features")) << run.out;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, VisionTool, ::testing::ValuesIn(image_fixtures()),
                         internvl::testing::FixtureName());
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(VisionTool);

// Bad command lines exit 2 before any model is loaded, with a hint to --help.
TEST(VisionToolUsage, BadUsageExitsTwo) {
  if (!internvl::testing::is_executable(tool_path())) GTEST_SKIP() << "internvl-vision not built";
  const std::vector<std::vector<std::string>> cases = {
      {},
      {"img.jpg"},                                   // no --model
      {"-m", "m"},                                   // no image
      {"-m"},                                        // flag without its value
      {"-m", "m", "--layer", "x", "img.jpg"},
      {"-m", "m", "--device", "tpu", "img.jpg"},
      {"-m", "m", "--device", "cuda:x", "img.jpg"},
      {"-m", "m", "--dtype", "int3", "img.jpg"},
      {"-m", "m", "--frobnicate", "img.jpg"},
  };
  for (const auto& args : cases) {
    std::string line;
    for (const auto& a : args) line += " " + a;
    SCOPED_TRACE(line);
    const auto run = run_tool(tool_path(), args);
    EXPECT_EQ(run.status, 2) << describe(run);
    EXPECT_TRUE(contains(run.err, "--help")) << run.err;
  }
  const auto typo = run_tool(tool_path(), {"-m", "m", "--devcie", "cpu", "img.jpg"});
  EXPECT_EQ(typo.status, 2) << describe(typo);
  EXPECT_TRUE(contains(typo.err, "did you mean --device?")) << typo.err;
  // A missing model folder is a failure, not bad usage.
  const auto missing = run_tool(tool_path(), {"-m", "/nonexistent/model", "img.jpg"});
  EXPECT_EQ(missing.status, 1) << describe(missing);
}

TEST(VisionToolUsage, HelpAndVersion) {
  if (!internvl::testing::is_executable(tool_path())) GTEST_SKIP() << "internvl-vision not built";
  const auto help = run_tool(tool_path(), {"--help"});
  EXPECT_EQ(help.status, 0) << describe(help);
  for (const std::string flag : {"usage:", "--model", "--device", "--dtype", "--layer", "--version", "Exit status"}) {
    EXPECT_TRUE(contains(help.out, flag)) << flag << "\n" << help.out;
  }
  const auto version = run_tool(tool_path(), {"--version"});
  EXPECT_EQ(version.status, 0) << describe(version);
  EXPECT_EQ(version.out, std::string("internvl-vision ") + INTERNVL_VERSION_STRING + "\n");
}

}  // namespace
