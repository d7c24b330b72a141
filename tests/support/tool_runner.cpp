#include "support/tool_runner.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

extern char** environ;

namespace internvl::testing {
namespace {
std::string directory_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}
}  // namespace

std::string example_tool_path(const char* env_override, const std::string& relative) {
  if (const char* env = std::getenv(env_override); env != nullptr && *env != '\0') return env;
  char self[4096];
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return "";
  self[n] = '\0';
  return directory_of(directory_of(self)) + "/" + relative;
}

bool is_executable(const std::string& path) { return !path.empty() && ::access(path.c_str(), X_OK) == 0; }

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

bool write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
  return out.good();
}

std::string unique_temp_path(const std::string& prefix, const std::string& what) {
  static std::atomic<int> counter{0};
  return ::testing::TempDir() + "/" + prefix + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) +
         "_" + what;
}

std::string describe(const ToolRun& run) {
  return "exit " + std::to_string(run.status) + "\nstdout:\n" + run.out + "\nstderr:\n" + run.err;
}

namespace {

// A child running `tool args...` with stdout/stderr in files and stdin from `stdin_fd` (closed in
// the parent's copy by the caller) or /dev/null when it is -1.
struct Child {
  pid_t pid = 0;
  std::string out_path, err_path;
  std::string error;  // set when the spawn failed
};

Child spawn(const std::string& tool, const std::vector<std::string>& args, int stdin_fd, int stdin_other_end,
            const std::string& what) {
  Child child;
  const std::string stem = unique_temp_path("tool", what);
  child.out_path = stem + ".out";
  child.err_path = stem + ".err";
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(tool.c_str()));
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (stdin_fd >= 0) {
    posix_spawn_file_actions_adddup2(&actions, stdin_fd, STDIN_FILENO);
    posix_spawn_file_actions_addclose(&actions, stdin_fd);
    if (stdin_other_end >= 0) posix_spawn_file_actions_addclose(&actions, stdin_other_end);
  } else {
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  }
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, child.out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, child.err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  const int rc = posix_spawn(&child.pid, tool.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) child.error = "posix_spawn failed: " + std::string(std::strerror(rc));
  return child;
}

// The finished child's status (from waitpid, unless `waited`) and output; removes the files.
ToolRun collect(const Child& child, bool waited, int status) {
  while (!waited && ::waitpid(child.pid, &status, 0) < 0 && errno == EINTR) {
  }
  ToolRun run;
  run.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  run.out = read_file(child.out_path);
  run.err = read_file(child.err_path);
  ::unlink(child.out_path.c_str());
  ::unlink(child.err_path.c_str());
  return run;
}

}  // namespace

ToolRun run_tool(const std::string& tool, const std::vector<std::string>& args, const std::optional<std::string>& input) {
  int pipe_fds[2] = {-1, -1};
  if (input && ::pipe(pipe_fds) != 0) {
    ToolRun run;
    run.err = std::string("pipe failed: ") + std::strerror(errno);
    return run;
  }
  const Child child = spawn(tool, args, pipe_fds[0], pipe_fds[1], "run");
  if (input) ::close(pipe_fds[0]);
  if (!child.error.empty()) {
    if (input) ::close(pipe_fds[1]);
    ToolRun run;
    run.err = child.error;
    return run;
  }
  if (input) {
    // The tool may quit (and close its stdin) before reading everything: no SIGPIPE here.
    struct sigaction ignore {}, previous {};
    ignore.sa_handler = SIG_IGN;
    ::sigaction(SIGPIPE, &ignore, &previous);
    std::size_t written = 0;
    while (written < input->size()) {
      const ssize_t n = ::write(pipe_fds[1], input->data() + written, input->size() - written);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      written += static_cast<std::size_t>(n);
    }
    ::close(pipe_fds[1]);
    ::sigaction(SIGPIPE, &previous, nullptr);
  }
  return collect(child, false, 0);
}

ToolRun run_tool_interrupted(const std::string& tool, const std::vector<std::string>& args, const std::string& marker,
                             int delay_ms) {
  const Child child = spawn(tool, args, -1, -1, "interrupted");
  if (!child.error.empty()) {
    ToolRun run;
    run.err = child.error;
    return run;
  }
  // Poll: the tool's stderr is a file, read as it grows.
  int status = 0;
  while (true) {
    if (::waitpid(child.pid, &status, WNOHANG) == child.pid) return collect(child, true, status);
    if (read_file(child.err_path).find(marker) != std::string::npos) {
      ::usleep(static_cast<useconds_t>(delay_ms) * 1000);
      ::kill(child.pid, SIGINT);
      return collect(child, false, 0);
    }
    ::usleep(2000);
  }
}

}  // namespace internvl::testing
