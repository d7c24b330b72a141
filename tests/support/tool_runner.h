// Running the example tools from tests: locate a tool built next to the tests, run it without a
// shell (optionally feeding stdin), capture exit status and output.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace internvl::testing {

struct ToolRun {
  int status = -1;  // exit status, or 128 + signal
  std::string out;
  std::string err;
};

// $env_override if set, else <build>/<relative> with <build> the parent of this test's folder
// (tests live in <build>/tests/).
std::string example_tool_path(const char* env_override, const std::string& relative);
bool is_executable(const std::string& path);

// Runs `tool args...`. With `input`, stdin is a pipe the text is written into and then closed;
// without, stdin is /dev/null.
ToolRun run_tool(const std::string& tool, const std::vector<std::string>& args,
                 const std::optional<std::string>& input = std::nullopt);
// Runs `tool args...` (stdin /dev/null) and sends it SIGINT `delay_ms` after `marker` first shows
// on its stderr (as a user's Ctrl-C mid-run); without the marker it is left to finish.
ToolRun run_tool_interrupted(const std::string& tool, const std::vector<std::string>& args,
                             const std::string& marker, int delay_ms);
std::string describe(const ToolRun& run);

std::string read_file(const std::string& path);
bool write_file(const std::string& path, const std::string& bytes);
// A fresh path under the test temp dir: <TempDir>/<prefix>_<pid>_<n>_<what>.
std::string unique_temp_path(const std::string& prefix, const std::string& what);

}  // namespace internvl::testing
