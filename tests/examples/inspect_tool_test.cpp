// The internvl-inspect tool as a user runs it: exit status and what it prints.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "internvl/model.h"
#include "internvl/version.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "io/tensor_convert.h"
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

// A sharded copy of the fixture: its tensors split in name order between two shard files and an
// index. Returns the shards' tensor names; `folder` holds the copy.
std::vector<std::vector<std::string>> write_two_shards(const std::string& fixture, const std::string& folder) {
  namespace fs = std::filesystem;
  internvl::testing::copy_checkpoint(fixture, folder);
  const std::string single = folder + "/model.safetensors";
  std::vector<std::vector<std::string>> names(2);
  {
    const internvl::io::Checkpoint checkpoint(single);
    const auto all = checkpoint.names();
    nlohmann::json weight_map = nlohmann::json::object();
    for (int shard = 0; shard < 2; ++shard) {
      std::vector<std::pair<std::string, at::Tensor>> tensors;
      const size_t begin = shard == 0 ? 0 : all.size() / 2, end = shard == 0 ? all.size() / 2 : all.size();
      const std::string file = "model-0000" + std::to_string(shard + 1) + "-of-00002.safetensors";
      for (size_t i = begin; i < end; ++i) {
        const auto& view = checkpoint.tensor(all[i]);
        tensors.emplace_back(all[i], internvl::io::to_tensor(view, internvl::io::to_scalar_type(view.dtype)));
        names[shard].push_back(all[i]);
        weight_map[all[i]] = file;
      }
      internvl::io::write_safetensors(folder + "/" + file, tensors);
    }
    std::ofstream(folder + "/model.safetensors.index.json") << nlohmann::json{{"metadata", nlohmann::json::object()},
                                                                              {"weight_map", weight_map}}.dump(2);
  }
  fs::remove(single);
  return names;
}

// A shard file the index names but the folder lacks: exit 1, the shard named (text and JSON), and
// the counts are those of the shard that is there.
TEST_P(InspectTool, MissingShardIsNamedAndThePresentShardCounted) {
  const std::string copy = internvl::testing::unique_temp_path("inspect_tool", "sharded");
  const auto names = write_two_shards(GetParam(), copy);
  ASSERT_FALSE(names[0].empty());
  ASSERT_FALSE(names[1].empty());
  const auto whole = internvl::testing::run_tool(tool_path(), {"--json", copy});
  const auto whole_doc = parse_json(whole);
  EXPECT_EQ(whole_doc.value("checkpoint_tensors", uint64_t{0}), names[0].size() + names[1].size()) << whole.out;
  EXPECT_EQ(whole_doc.value("missing_shards", nlohmann::json()), nlohmann::json::array()) << whole.out;

  const std::string gone = "model-00002-of-00002.safetensors";
  std::filesystem::remove(copy + "/" + gone);
  const auto run = internvl::testing::run_tool(tool_path(), {copy});
  EXPECT_EQ(run.status, 1) << describe(run);
  EXPECT_TRUE(contains(run.out, "missing shard files (1):\n  " + gone + "\n")) << run.out;
  EXPECT_TRUE(contains(run.out, "PROBLEMS") && contains(run.out, "shard " + gone + " is missing")) << run.out;
  const auto figures = text_figures(run.out);
  ASSERT_EQ(figures.size(), 3u) << run.out;
  EXPECT_EQ(figures[2], names[0].size()) << run.out;

  const auto json_run = internvl::testing::run_tool(tool_path(), {"--json", copy});
  EXPECT_EQ(json_run.status, 1) << describe(json_run);
  const auto doc = parse_json(json_run);
  EXPECT_EQ(doc.value("missing_shards", nlohmann::json()), nlohmann::json::array({gone})) << json_run.out;
  EXPECT_EQ(doc.value("checkpoint_tensors", uint64_t{0}), names[0].size());
  EXPECT_EQ(doc.value("ok", true), false);
  // What the model lacks is what the missing shard held, less the tensors nothing uses.
  const auto unexpected = whole_doc.value("unexpected", nlohmann::json::array());
  size_t needed_in_gone = 0;
  for (const auto& name : names[1]) {
    if (std::find(unexpected.begin(), unexpected.end(), name) == unexpected.end()) ++needed_in_gone;
  }
  EXPECT_EQ(doc.value("missing", nlohmann::json::array()).size(), needed_in_gone) << json_run.out;
  for (const auto& name : doc.value("missing", nlohmann::json::array())) {
    EXPECT_NE(std::find(names[1].begin(), names[1].end(), name.get<std::string>()), names[1].end()) << name;
  }
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
}

// A folder that is not there is an error naming it (status 1), not a report of unknown rows;
// --json still gives the report, saying so.
TEST(InspectToolUsage, MissingFolderIsAnErrorNamingIt) {
  if (!internvl::testing::is_executable(tool_path())) GTEST_SKIP() << "internvl-inspect not built";
  const std::string missing = internvl::testing::unique_temp_path("inspect_tool", "no_such_folder");
  const auto run = internvl::testing::run_tool(tool_path(), {missing});
  EXPECT_EQ(run.status, 1) << describe(run);
  EXPECT_TRUE(contains(run.err, "error:") && contains(run.err, missing)) << describe(run);
  EXPECT_EQ(run.out, "") << describe(run);
  const auto json_run = internvl::testing::run_tool(tool_path(), {"--json", missing});
  EXPECT_EQ(json_run.status, 1) << describe(json_run);
  const auto doc = parse_json(json_run);
  EXPECT_EQ(doc.value("found", true), false) << json_run.out;
  EXPECT_EQ(doc.value("ok", true), false) << json_run.out;
  ASSERT_FALSE(doc.value("problems", nlohmann::json::array()).empty()) << json_run.out;
  EXPECT_TRUE(contains(doc["problems"][0].get<std::string>(), missing)) << json_run.out;
  // An existing folder is found, whatever else is wrong with it.
  const auto found = internvl::testing::run_tool(tool_path(), {"--json", internvl::testing::fixtures_dir()});
  EXPECT_EQ(parse_json(found).value("found", false), true) << found.out;
}

}  // namespace
