// The internvl-inspect tool as a user runs it: exit status and what it prints.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>

#include "internvl/model.h"
#include "internvl/version.h"
#include "io/safetensors.h"
#include "support/fixtures.h"
#include "support/tool_runner.h"

namespace {

using internvl::testing::describe;

std::string tool_path() {
  return internvl::testing::example_tool_path("INTERNVL_INSPECT_TOOL", "examples/inspect/internvl-inspect");
}

bool contains(const std::string& text, const std::string& needle) { return text.find(needle) != std::string::npos; }

nlohmann::json parse_json(const internvl::testing::ToolRun& run) {
  try {
    return nlohmann::json::parse(run.out);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "stdout is not one JSON document: " << e.what() << "\n" << describe(run);
    return nlohmann::json::object();
  }
}

// The figures of the text report's "parameters" line: model parameters, checkpoint elements, tensors.
std::vector<uint64_t> text_figures(const std::string& out) {
  std::smatch m;
  const std::regex line(R"(parameters +(\d+) in the model, (\d+) elements in (\d+) checkpoint tensors)");
  if (!std::regex_search(out, m, line)) return {};
  return {std::stoull(m[1]), std::stoull(m[2]), std::stoull(m[3])};
}

// The `name (N):` count of a text report's list, 0 when the list is absent.
size_t text_count(const std::string& out, const std::string& title) {
  std::smatch m;
  if (!std::regex_search(out, m, std::regex(title + R"( \((\d+)\):)"))) return 0;
  return std::stoul(m[1]);
}

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
  // --json says the same: the one missing tensor, not ok, status 1.
  const auto json_run = internvl::testing::run_tool(tool_path(), {"--json", copy});
  EXPECT_EQ(json_run.status, 1) << describe(json_run);
  const auto doc = parse_json(json_run);
  EXPECT_EQ(doc.value("missing", nlohmann::json::array()), nlohmann::json::array({dropped})) << json_run.out;
  EXPECT_EQ(doc.value("ok", true), false);
  EXPECT_FALSE(doc.value("problems", nlohmann::json::array()).empty());
  std::filesystem::remove_all(copy);
}

// --json is the same report as one object: its figures agree with the text report's and the model's.
TEST_P(InspectTool, JsonAgreesWithTheTextReport) {
  const std::string dir = internvl::testing::fixture_path(GetParam());
  const auto text = internvl::testing::run_tool(tool_path(), {"--all", dir});
  const auto run = internvl::testing::run_tool(tool_path(), {"--json", dir});
  ASSERT_EQ(run.status, text.status) << describe(run);
  const auto doc = parse_json(run);
  const auto figures = text_figures(text.out);
  ASSERT_EQ(figures.size(), 3u) << text.out;
  EXPECT_EQ(doc.value("num_parameters", uint64_t{0}), figures[0]);
  EXPECT_EQ(doc.value("checkpoint_elements", uint64_t{0}), figures[1]);
  EXPECT_EQ(doc.value("checkpoint_tensors", uint64_t{0}), figures[2]);
  EXPECT_EQ(doc.value("num_parameters", uint64_t{0}), internvl::Model::load(dir).info().num_parameters);
  EXPECT_EQ(doc["missing"].size(), text_count(text.out, "missing tensors"));
  EXPECT_EQ(doc["unexpected"].size(), text_count(text.out, R"(unexpected tensors \(not used by this library\))"));
  for (const auto& name : doc["unexpected"]) EXPECT_TRUE(contains(text.out, "  " + name.get<std::string>() + "\n"));
  EXPECT_TRUE(contains(text.out, "architecture  " + doc.value("architecture", std::string("?"))));
  EXPECT_EQ(doc.value("ok", false), contains(text.out, "OK: the folder is complete"));
  EXPECT_FALSE(doc["memory"].empty());
  for (const auto& m : doc["memory"]) {
    EXPECT_GT(m.value("weight_bytes", uint64_t{0}), 0u) << m.dump();
    EXPECT_TRUE(m.contains("dtype") && m.contains("device")) << m.dump();
  }
}

// -m DIR is the positional DIR.
TEST_P(InspectTool, ShortModelFlagIsTheFolder) {
  const std::string dir = internvl::testing::fixture_path(GetParam());
  const auto positional = internvl::testing::run_tool(tool_path(), {dir});
  for (const std::vector<std::string> args : {std::vector<std::string>{"-m", dir}, {"--model", dir}, {"--model=" + dir}}) {
    const auto run = internvl::testing::run_tool(tool_path(), args);
    EXPECT_EQ(run.status, positional.status) << describe(run);
    EXPECT_EQ(run.out, positional.out);
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, InspectTool, ::testing::ValuesIn(internvl::testing::fixture_names()),
                         internvl::testing::FixtureName());

TEST(InspectToolUsage, NoFolderIsAUsageError) {
  if (!internvl::testing::is_executable(tool_path())) GTEST_SKIP() << "internvl-inspect not built";
  EXPECT_EQ(internvl::testing::run_tool(tool_path(), {}).status, 2);
  EXPECT_EQ(internvl::testing::run_tool(tool_path(), {"--bogus", "x"}).status, 2);
  EXPECT_EQ(internvl::testing::run_tool(tool_path(), {"a", "b"}).status, 2);
  EXPECT_EQ(internvl::testing::run_tool(tool_path(), {"-m"}).status, 2);
  const auto typo = internvl::testing::run_tool(tool_path(), {"--jsno", "x"});
  EXPECT_EQ(typo.status, 2) << describe(typo);
  EXPECT_TRUE(contains(typo.err, "did you mean --json?")) << typo.err;
  const auto help = internvl::testing::run_tool(tool_path(), {"--help"});
  EXPECT_EQ(help.status, 0);
  EXPECT_TRUE(contains(help.out, "usage:") && contains(help.out, "--json")) << help.out;
  const auto version = internvl::testing::run_tool(tool_path(), {"--version"});
  EXPECT_EQ(version.status, 0) << describe(version);
  EXPECT_EQ(version.out, std::string("internvl-inspect ") + INTERNVL_VERSION_STRING + "\n");
  const auto run = internvl::testing::run_tool(tool_path(), {"/nonexistent/folder"});
  EXPECT_EQ(run.status, 1) << describe(run);
  EXPECT_TRUE(contains(run.out, "/nonexistent/folder")) << run.out;
}

}  // namespace
