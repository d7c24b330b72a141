// Ctrl-C in `internvl-retrieve index`, for each backend: the tool stops after the batch in hand,
// saves what it embedded (an IVF index is trained on the rows it has), exits 130 with the hint to
// run the same command again, and that command then indexes only the rest.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "internvl/index.h"
#include "support/fixtures.h"
#include "support/tool_runner.h"

namespace fs = std::filesystem;
using internvl::testing::describe;
using nlohmann::json;

namespace {

std::string tool_path() {
  return internvl::testing::example_tool_path("INTERNVL_RETRIEVE_TOOL", "examples/retrieve/internvl-retrieve");
}

class RetrieveInterrupt : public ::testing::TestWithParam<std::string> {};

TEST_P(RetrieveInterrupt, CtrlCSavesWhatIsDoneAndTheSameCommandResumes) {
  if (!fs::exists(tool_path())) GTEST_SKIP() << "internvl-retrieve not built";
  const auto fixture = GetParam();
  const auto reference = internvl::testing::fixture_reference(fixture);
  std::vector<std::string> sources;
  for (const auto& image : reference.at("inputs").at("images")) {
    sources.push_back((fs::path(internvl::testing::images_dir()) / image.at("file").get<std::string>()).string());
  }
  ASSERT_FALSE(sources.empty());
  const auto work = internvl::testing::unique_temp_path("retrieve_interrupt", fixture);
  const auto photos = work + "/photos";
  fs::create_directories(photos);
  // Many files (hard links: distinct paths, one copy on disk) so that the run is still embedding
  // when the signal comes.
  constexpr int kFiles = 600;
  for (int i = 0; i < kFiles; ++i) {
    const auto& source = sources[static_cast<size_t>(i) % sources.size()];
    const auto name = photos + "/" + std::to_string(i) + fs::path(source).extension().string();
    ASSERT_EQ(::link(source.c_str(), name.c_str()), 0) << name;
  }
  std::vector<std::string> backends = {"flat"};
  if (internvl::Index::faiss_available()) backends.insert(backends.end(), {"ivf", "hnsw"});
  for (const auto& backend : backends) {
    SCOPED_TRACE("backend " + backend);
    const auto index_path = work + "/" + backend + ".safetensors";
    const std::vector<std::string> args = {"index",     "-m",           internvl::testing::fixture_path(fixture),
                                           "--backend", backend,        "--index",
                                           index_path,  "--batch-size", "2",
                                           "--json",    photos};
    const auto first = internvl::testing::run_tool_interrupted(tool_path(), args, "loaded ", 300);
    ASSERT_EQ(first.status, 130) << describe(first);
    const auto report = json::parse(first.out);
    EXPECT_TRUE(report.at("interrupted").get<bool>());
    const auto added = report.at("added").get<int64_t>();
    EXPECT_GT(added, 0);
    EXPECT_LT(added, kFiles);
    EXPECT_NE(first.err.find("run the same command again"), std::string::npos) << first.err;
    EXPECT_EQ(internvl::Index::load(index_path).size(), added);

    const auto second = internvl::testing::run_tool(tool_path(), args);
    ASSERT_EQ(second.status, 0) << describe(second);
    const auto resumed = json::parse(second.out);
    EXPECT_EQ(resumed.at("already_indexed").get<int64_t>(), added);
    EXPECT_EQ(resumed.at("added").get<int64_t>(), kFiles - added);
    EXPECT_EQ(resumed.at("size").get<int64_t>(), kFiles);
    EXPECT_EQ(internvl::Index::load(index_path).size(), kFiles);
  }
  std::error_code ec;
  fs::remove_all(work, ec);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, RetrieveInterrupt,
                         ::testing::ValuesIn(internvl::testing::fixtures_with_architecture("InternVLModel")),
                         internvl::testing::FixtureName());
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(RetrieveInterrupt);

}  // namespace
