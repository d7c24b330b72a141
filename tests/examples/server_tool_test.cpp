// internvl-server's command line as a user meets it: bad usage exits 2 before anything is
// loaded or bound, and a mistyped flag is named with the nearest real one, as the other tools do.
#include <gtest/gtest.h>

#include <regex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "support/tool_runner.h"

namespace {

using internvl::testing::describe;

bool contains(const std::string& text, const std::string& needle) { return text.find(needle) != std::string::npos; }

class ServerToolCli : public ::testing::Test {
 protected:
  void SetUp() override {
    tool_ = internvl::testing::example_tool_path("INTERNVL_SERVER_TOOL", "examples/server/internvl-server");
    if (!internvl::testing::is_executable(tool_)) GTEST_SKIP() << "internvl-server not built (looked for " << tool_ << ")";
  }
  std::string tool_;
};

// Flags one or two edits from a real one get "did you mean"; the message keeps naming the flag.
TEST_F(ServerToolCli, UnknownFlagSuggestsTheNearestOne) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--prot", "--port"}, {"--modle", "--model"}, {"--paralel", "--parallel"}, {"--devcie", "--device"},
      {"--max-token", "--max-tokens"}, {"-threads", "--threads"}};
  for (const auto& [typo, suggestion] : cases) {
    SCOPED_TRACE(typo);
    const auto run = internvl::testing::run_tool(tool_, {"-m", "unused", typo, "1"});
    EXPECT_EQ(run.status, 2) << describe(run);
    EXPECT_TRUE(contains(run.err, "unknown option '" + typo + "'")) << describe(run);
    EXPECT_TRUE(contains(run.err, "(did you mean " + suggestion + "?)")) << describe(run);
    EXPECT_EQ(run.out, "") << "nothing listens\n" << describe(run);
  }
  // A flag far from every real one is named without a guess.
  const auto far = internvl::testing::run_tool(tool_, {"-m", "unused", "--frobnicate"});
  EXPECT_EQ(far.status, 2) << describe(far);
  EXPECT_TRUE(contains(far.err, "unknown option '--frobnicate'")) << describe(far);
  EXPECT_FALSE(contains(far.err, "did you mean")) << describe(far);
}

// Every long flag --help documents is suggested for itself with one letter missing: the list of
// suggestions cannot fall behind the options.
TEST_F(ServerToolCli, EveryDocumentedFlagIsSuggested) {
  const auto help = internvl::testing::run_tool(tool_, {"--help"});
  ASSERT_EQ(help.status, 0) << describe(help);
  std::set<std::string> flags;
  const std::regex flag(R"(--[a-z][a-z-]*[a-z])");
  for (auto it = std::sregex_iterator(help.out.begin(), help.out.end(), flag); it != std::sregex_iterator(); ++it)
    flags.insert(it->str());
  ASSERT_GE(flags.size(), 10u) << help.out;
  for (const auto& name : flags) {
    const std::string typo = name.substr(0, 3) + name.substr(4);  // "--port" -> "--prt"
    const auto run = internvl::testing::run_tool(tool_, {"-m", "unused", typo});
    EXPECT_EQ(run.status, 2) << describe(run);
    EXPECT_TRUE(contains(run.err, "(did you mean " + name + "?)")) << typo << "\n" << describe(run);
  }
}

}  // namespace
