// The server's web page in a real browser: tests/server/browser_check.py drives headless Chromium
// through Selenium against a running internvl-server and compares what the page shows with
// direct API calls. Screenshots go to <build>/tests/server/screenshots/.
//
// Without Chromium, chromedriver or the venv's selenium these tests fail (scripts/setup.sh
// installs them); INTERNVL_SKIP_BROWSER_TESTS=1 skips them instead.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "server/server_process.h"
#include "support/fixtures.h"
#include "support/tool_runner.h"

namespace fs = std::filesystem;
using namespace internvl::testing;

namespace {

std::string env_or(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : fallback;
}

// The same paths browser_check.py uses.
std::string chromium() { return env_or("INTERNVL_CHROMIUM", "/usr/bin/chromium"); }
std::string chromedriver() { return env_or("INTERNVL_CHROMEDRIVER", "/usr/bin/chromedriver"); }

std::string screenshots_dir() {
  const auto dir = example_tool_path("INTERNVL_SCREENSHOTS_DIR", "tests/server/screenshots");
  fs::create_directories(dir);
  return dir;
}

// The first image of the fixtures' images.json.
std::string test_image() {
  const auto images = read_json((fs::path(images_dir()) / "images.json").string());
  return (fs::path(images_dir()) / images.at(0).at("file").get<std::string>()).string();
}

std::string first_fixture(const std::string& architecture) {
  const auto fixtures = fixtures_with_architecture(architecture);
  return fixtures.empty() ? "" : fixture_path(fixtures.front());
}

// An index of the fixture images, built once with internvl-retrieve and removed at exit.
const std::string& retrieval_index(const std::string& model, std::string* why) {
  struct Built {
    std::string path, error;
    ~Built() {
      if (!path.empty()) std::remove(path.c_str());
    }
  };
  static Built index;
  if (index.path.empty() && index.error.empty()) {
    const auto tool = example_tool_path("INTERNVL_RETRIEVE_TOOL", "examples/retrieve/internvl-retrieve");
    const auto file = unique_temp_path("browser", "index.safetensors");
    const auto run = run_tool(tool, {"index", "--model", model, "--index", file, "--quiet", images_dir()});
    if (run.status == 0) {
      index.path = file;
    } else {
      index.error = tool + " index failed: " + describe(run);
    }
  }
  *why = index.error;
  return index.path;
}

class BrowserTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (env_or("INTERNVL_SKIP_BROWSER_TESTS", "") == "1") GTEST_SKIP() << "INTERNVL_SKIP_BROWSER_TESTS=1";
    ASSERT_TRUE(is_executable(chromium())) << chromium() << " is missing (apt install chromium; scripts/setup.sh)";
    ASSERT_TRUE(is_executable(chromedriver()))
        << chromedriver() << " is missing (apt install chromium-driver; scripts/setup.sh)";
    const auto selenium = run_tool(test_python(), {"-c", "import selenium"});
    ASSERT_EQ(selenium.status, 0) << test_python() << " cannot import selenium (scripts/setup.sh): "
                                  << describe(selenium);
  }

  // Runs browser_check.py against a server started with `server_args`.
  void check_page(const std::vector<std::string>& server_args, std::vector<std::string> check_args) {
    std::string why;
    auto server = ServerProcess::start(server_args, &why);
    ASSERT_NE(server, nullptr) << why;
    std::vector<std::string> args = {"--url", server->base_url(), "--screenshots", screenshots_dir(),
                                     "--image", test_image()};
    args.insert(args.end(), check_args.begin(), check_args.end());
    const auto run = run_python("browser_check.py", args);
    EXPECT_EQ(run.status, 0) << describe(run) << "\nserver stderr:\n" << server->stderr_text();
    std::cout << run.out;
    EXPECT_EQ(server->stop(), 0) << server->stderr_text();
  }

  std::string chat_model() {
    const auto model = first_fixture("InternVLChatModel");
    if (model.empty()) ADD_FAILURE() << "no InternVLChatModel fixture in " << fixtures_dir();
    return model;
  }
  std::string retrieval_model() {
    const auto model = first_fixture("InternVLModel");
    if (model.empty()) ADD_FAILURE() << "no InternVLModel fixture in " << fixtures_dir();
    return model;
  }
};

TEST_F(BrowserTest, ChatPageStreamsWhatAUnaryRequestAnswers) {
  const auto model = chat_model();
  if (model.empty()) return;
  check_page({"-m", model, "-t", "2"}, {"--mode", "chat", "--name", "chat"});
}

TEST_F(BrowserTest, SearchPageShowsWhatTheSearchApiAnswers) {
  const auto model = retrieval_model();
  if (model.empty()) return;
  std::string why;
  const auto index = retrieval_index(model, &why);
  ASSERT_FALSE(index.empty()) << why;
  check_page({"-m", model, "-t", "2", "--index", index}, {"--mode", "search", "--name", "search"});
}

TEST_F(BrowserTest, RetrievalPageWithoutIndexSaysSo) {
  const auto model = retrieval_model();
  if (model.empty()) return;
  check_page({"-m", model, "-t", "2"}, {"--mode", "no-index", "--name", "no-index"});
}

// With --api-key the page shows the 401 message until the key is entered, then works; search
// thumbnails need the key too (they are fetched, not linked).
TEST_F(BrowserTest, ApiKeyFromThePageIsSentAsBearer) {
  const std::string key = "browser-test-key";
  const auto chat = chat_model();
  if (!chat.empty()) {
    check_page({"-m", chat, "-t", "2", "--api-key", key},
               {"--mode", "chat", "--name", "chat-key", "--api-key", key});
  }
  const auto model = retrieval_model();
  if (model.empty()) return;
  std::string why;
  const auto index = retrieval_index(model, &why);
  ASSERT_FALSE(index.empty()) << why;
  check_page({"-m", model, "-t", "2", "--index", index, "--api-key", key},
             {"--mode", "search", "--name", "search-key", "--api-key", key});
}

}  // namespace
