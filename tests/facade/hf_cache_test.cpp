// Model ids resolved from a local Hugging Face cache laid out as huggingface_hub writes it
// (models--ORG--NAME/{refs/main, snapshots/<commit>/ with files as symlinks into blobs/}), and
// the facade loading a fixture through such an id.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "internvl/error.h"
#include "internvl/inspect.h"
#include "internvl/model.h"
#include "io/hf_cache.h"
#include "support/fixtures.h"
#include "support/tool_runner.h"

namespace fs = std::filesystem;
using namespace internvl;

namespace {

// Sets (or clears, with nullptr) an environment variable for the scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old, had_ = true;
    if (value) ::setenv(name, value, 1);
    else ::unsetenv(name);
  }
  ~ScopedEnv() {
    if (had_) ::setenv(name_.c_str(), old_.c_str(), 1);
    else ::unsetenv(name_.c_str());
  }

 private:
  std::string name_, old_;
  bool had_ = false;
};

class HfCache : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(internvl::testing::unique_temp_path("hf_cache", "hub"));
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }
  // A cached repo whose snapshot `commit` holds the fixture's files as symlinks into blobs/.
  fs::path add_repo(const std::string& repo_dir, const std::string& fixture, const std::string& commit,
                    const std::string& ref = "main") {
    const fs::path repo = root_ / repo_dir;
    const fs::path snapshot = repo / "snapshots" / commit;
    fs::create_directories(snapshot);
    fs::create_directories(repo / "blobs");
    fs::create_directories(repo / "refs");
    for (const auto& entry : fs::directory_iterator(internvl::testing::fixture_path(fixture))) {
      const auto name = entry.path().filename().string();
      if (name.rfind("reference", 0) == 0) continue;
      const fs::path blob = repo / "blobs" / (commit + "-" + name);
      fs::copy_file(entry.path(), blob);
      fs::create_symlink(fs::relative(blob, snapshot), snapshot / name);
    }
    std::ofstream(repo / "refs" / ref) << commit;  // no newline, as huggingface_hub writes it
    return snapshot;
  }
  fs::path root_;
};

TEST_F(HfCache, FoldersPassThroughAndIdsResolveToTheSnapshotOfTheRef) {
  const auto fixtures = internvl::testing::fixture_names();
  if (fixtures.empty()) GTEST_SKIP() << "no fixture";
  ScopedEnv cache("HF_HUB_CACHE", root_.c_str());
  const auto dir = internvl::testing::fixture_path(fixtures.front());
  EXPECT_EQ(io::resolve_model_directory(dir), dir);
  const auto main_snapshot = add_repo("models--Org--Tiny-Model", fixtures.front(), "abc123");
  const auto tagged = add_repo("models--Org--Tiny-Model", fixtures.front(), "def456", "v1");
  EXPECT_EQ(fs::path(io::resolve_model_directory("Org/Tiny-Model")), main_snapshot);
  EXPECT_EQ(fs::path(io::resolve_model_directory("Org/Tiny-Model@v1")), tagged);
  EXPECT_EQ(fs::path(io::resolve_model_directory("Org/Tiny-Model@abc123")), main_snapshot);  // a commit
}

TEST_F(HfCache, CacheFolderFollowsTheEnvironmentLikeHuggingfaceHub) {
  const auto fixtures = internvl::testing::fixture_names();
  if (fixtures.empty()) GTEST_SKIP() << "no fixture";
  ScopedEnv hub_cache("HF_HUB_CACHE", nullptr), legacy("HUGGINGFACE_HUB_CACHE", nullptr);
  const fs::path home = root_ / "hf-home";
  ScopedEnv hf_home("HF_HOME", home.c_str());
  const auto dirs = io::hf_hub_cache_dirs();
  ASSERT_FALSE(dirs.empty());
  EXPECT_EQ(fs::path(dirs.front()), home / "hub");
  const fs::path saved_root = root_;
  root_ = home / "hub";
  const auto snapshot = add_repo("models--Org--Home", fixtures.front(), "c0ffee");
  root_ = saved_root;
  EXPECT_EQ(fs::path(io::resolve_model_directory("Org/Home")), snapshot);
}

TEST_F(HfCache, UnknownIdsAndBadArgumentsNameWhereTheyLooked) {
  ScopedEnv cache("HF_HUB_CACHE", root_.c_str());
  try {
    io::resolve_model_directory("Org/Missing");
    ADD_FAILURE() << "resolved a model that is nowhere";
  } catch (const ConfigError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find((root_ / "models--Org--Missing").string()), std::string::npos) << what;
    EXPECT_NE(what.find("huggingface-cli download Org/Missing"), std::string::npos) << what;
  }
  // A ref naming a snapshot that is not there (an interrupted download).
  fs::create_directories(root_ / "models--Org--Partial" / "refs");
  std::ofstream(root_ / "models--Org--Partial" / "refs" / "main") << "feedface";
  EXPECT_THROW(io::resolve_model_directory("Org/Partial"), ConfigError);
  for (const char* bad : {"no-slash-and-no-folder", "a/b/c", "../etc/x", "Org/Name@../../x", "Org/Na me", "/Org"}) {
    SCOPED_TRACE(bad);
    EXPECT_THROW(io::resolve_model_directory(bad), ConfigError);
  }
}

TEST_F(HfCache, ModelLoadAndInspectTakeAnId) {
  const auto chat = internvl::testing::fixtures_with_architecture("InternVLChatModel");
  if (chat.empty()) GTEST_SKIP() << "no chat fixture";
  ScopedEnv cache("HF_HUB_CACHE", root_.c_str());
  const auto snapshot = add_repo("models--OpenGVLab--Tiny-Chat", chat.front(), "0123abcd");
  const auto model = Model::load("OpenGVLab/Tiny-Chat");
  EXPECT_EQ(fs::path(model.info().path), snapshot);
  const auto direct = Model::load(internvl::testing::fixture_path(chat.front()));
  EXPECT_EQ(model.model_id(), direct.model_id());  // same config and tensors
  const auto report = inspect_checkpoint("OpenGVLab/Tiny-Chat");
  EXPECT_TRUE(report.ok()) << (report.problems.empty() ? "" : report.problems.front());
  EXPECT_EQ(fs::path(report.path), snapshot);
  EXPECT_FALSE(inspect_checkpoint("OpenGVLab/Not-There").ok());
}

}  // namespace
