// internvl-server as a child process for the server tests: started on an ephemeral port of
// 127.0.0.1, ready once /health answers 200, stopped with a signal; plus a way to run the
// project venv's Python clients against it. Header-only: each tests/server/*_test.cpp is its
// own executable.
#pragma once

// Eigen (through the public headers) before httplib.h: httplib pulls in <resolv.h>, whose `_res`
// macro breaks Eigen's parameter names.
#include <internvl/internvl.h>
// clang-format off
#include <fcntl.h>
#include <httplib.h>
// clang-format on
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "fixtures_dir.h"
#include "support/tool_runner.h"

extern char** environ;

namespace internvl::testing {

inline std::string server_tool_path() {
  return example_tool_path("INTERNVL_SERVER_TOOL", "examples/server/internvl-server");
}

inline std::string test_python() {
  if (const char* python = std::getenv("INTERNVL_TEST_PYTHON")) return python;
  return INTERNVL_TEST_PYTHON;
}

inline std::string server_test_script(const std::string& name) {
  return std::string(INTERNVL_SOURCE_DIR) + "/tests/server/" + name;
}

class ServerProcess {
 public:
  // Starts `internvl-server args... --port 0`; empty on failure (error() of the returned
  // object is not available then, so the reason goes to `*why`).
  static std::unique_ptr<ServerProcess> start(const std::vector<std::string>& args, std::string* why,
                                              int ready_timeout_s = 120) {
    auto server = std::unique_ptr<ServerProcess>(new ServerProcess());
    server->stderr_path_ = unique_temp_path("server", "stderr.txt");
    int out_pipe[2];
    if (::pipe(out_pipe) != 0) {
      *why = "pipe failed";
      return nullptr;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
    posix_spawn_file_actions_addclose(&actions, out_pipe[0]);
    posix_spawn_file_actions_addopen(&actions, 2, server->stderr_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    const std::string tool = server_tool_path();
    std::vector<std::string> all = {tool};
    all.insert(all.end(), args.begin(), args.end());
    all.push_back("--port");
    all.push_back("0");
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = ::posix_spawn(&server->pid_, tool.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(out_pipe[1]);
    if (rc != 0) {
      ::close(out_pipe[0]);
      *why = "cannot start " + tool;
      return nullptr;
    }
    server->stdout_fd_ = out_pipe[0];
    // "internvl-server: listening on http://HOST:PORT"
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(ready_timeout_s);
    std::string line;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{server->stdout_fd_, POLLIN, 0};
      if (::poll(&p, 1, 200) <= 0) continue;
      char c;
      if (::read(server->stdout_fd_, &c, 1) != 1) break;
      if (c != '\n') {
        line += c;
        continue;
      }
      const auto colon = line.rfind(':');
      if (line.find("listening on http://") != std::string::npos && colon != std::string::npos) {
        server->port_ = std::atoi(line.c_str() + colon + 1);
        break;
      }
      line.clear();
    }
    if (server->port_ <= 0) {
      *why = "the server printed no port; stderr: " + server->stderr_text();
      return nullptr;
    }
    while (std::chrono::steady_clock::now() < deadline) {
      httplib::Client client("127.0.0.1", server->port_);
      client.set_connection_timeout(1, 0);
      auto res = client.Get("/health");
      if (res && res->status == 200) return server;
      if (!server->running()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    *why = "the server did not become ready; stderr: " + server->stderr_text();
    return nullptr;
  }

  ~ServerProcess() {
    if (running()) {
      ::kill(pid_, SIGKILL);
      int status;
      ::waitpid(pid_, &status, 0);
    }
    if (stdout_fd_ >= 0) ::close(stdout_fd_);
    ::unlink(stderr_path_.c_str());
  }

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  httplib::Client client(int read_timeout_s = 120) const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(read_timeout_s, 0);
    return c;
  }

  bool running() {
    if (exited_) return false;
    int status;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exited_ = true;
      exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return false;
    }
    return true;
  }

  // Sends `signal` and waits up to `timeout_s`; the exit status, or -1 when it did not exit.
  int stop(int signal = SIGTERM, int timeout_s = 30) {
    if (running()) ::kill(pid_, signal);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
    while (running() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return running() ? -1 : exit_status_;
  }

  // Resident memory of the server in KiB (VmRSS), -1 when unavailable.
  long rss_kib() const {
    std::ifstream status("/proc/" + std::to_string(pid_) + "/status");
    std::string key;
    while (status >> key) {
      if (key == "VmRSS:") {
        long kib;
        status >> kib;
        return kib;
      }
      std::string rest;
      std::getline(status, rest);
    }
    return -1;
  }

  std::string stderr_text() const { return read_file(stderr_path_); }

 private:
  ServerProcess() = default;
  pid_t pid_ = -1;
  int port_ = -1;
  int stdout_fd_ = -1;
  bool exited_ = false;
  int exit_status_ = -1;
  std::string stderr_path_;
};

// POST with the response body handed to `on_data` as it arrives (return false to hang up).
inline httplib::Result post_streaming(httplib::Client& client, const std::string& path, const std::string& body,
                                      const std::function<bool(const char*, size_t)>& on_data) {
  httplib::Request req;
  req.method = "POST";
  req.path = path;
  req.headers = {{"Content-Type", "application/json"}};
  req.body = body;
  req.content_receiver = [on_data](const char* data, size_t size, uint64_t, uint64_t) { return on_data(data, size); };
  return client.send(req);
}

// Runs the project venv's Python on a script from tests/server/ with arguments.
inline ToolRun run_python(const std::string& script, const std::vector<std::string>& args) {
  std::vector<std::string> all = {server_test_script(script)};
  all.insert(all.end(), args.begin(), args.end());
  return run_tool(test_python(), all);
}

}  // namespace internvl::testing
