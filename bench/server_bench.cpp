// What the HTTP server costs over calling the library: time to first token and decode tokens/s
// for one greedy chat, (a) in-process through Model::chat with a stream callback, (b) through
// internvl-server (a child process, --port 0) with one streaming client. Best of --runs each,
// alternating so that load drift hits both; both must produce the same text.
//   server_bench DIR [--prompt TEXT] [--tokens N] [--threads T] [--runs R] [--server PATH]
// DIR: e.g. the checkpoint bench/make_server_bench_checkpoint.py writes.
// Eigen (through the public headers) before httplib.h: httplib's <resolv.h> defines `_res`.
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

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;

struct Run {
  double ttft_s = 0;       // request start to the first non-empty text
  double decode_tps = 0;   // tokens after the first / (last text - first text)
  int tokens = 0;
  std::string text;
  std::string finish;
};

double seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

void finish_run(Run& r, Clock::time_point start, Clock::time_point first, Clock::time_point last) {
  r.ttft_s = seconds(start, first);
  r.decode_tps = r.tokens > 1 ? (r.tokens - 1) / seconds(first, last) : 0;
}

Run run_in_process(const internvl::Model& model, const std::string& prompt, int tokens) {
  internvl::ChatRequest req;
  req.question = prompt;
  req.generation.max_new_tokens = tokens;
  Run r;
  const auto start = Clock::now();
  Clock::time_point first{}, last{};
  const auto result = model.chat(req, [&](const std::string& piece) {
    if (piece.empty()) return true;  // held back bytes of a partial UTF-8 character
    last = Clock::now();
    if (first == Clock::time_point{}) first = last;
    r.text += piece;
    return true;
  });
  r.tokens = static_cast<int>(result.output_ids.size());
  r.finish = result.stopped_on_eos ? "stop" : "length";
  finish_run(r, start, first, last);
  return r;
}

// internvl-server as a child on an ephemeral port; killed when this object goes.
class Server {
 public:
  Server(const std::string& tool, const std::vector<std::string>& args) {
    int out[2];
    if (::pipe(out) != 0) throw std::runtime_error("pipe failed");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_addclose(&actions, out[0]);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    std::vector<std::string> all = {tool};
    all.insert(all.end(), args.begin(), args.end());
    all.insert(all.end(), {"--port", "0"});
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = ::posix_spawn(&pid_, tool.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    if (rc != 0) throw std::runtime_error("cannot start " + tool);
    // The port is in "internvl-server: listening on http://HOST:PORT".
    const auto deadline = Clock::now() + std::chrono::seconds(300);
    std::string line;
    while (port_ <= 0 && Clock::now() < deadline) {
      pollfd p{out[0], POLLIN, 0};
      if (::poll(&p, 1, 200) <= 0) continue;
      char c;
      if (::read(out[0], &c, 1) != 1) break;
      if (c != '\n') {
        line += c;
        continue;
      }
      if (line.find("listening on http://") != std::string::npos) port_ = std::atoi(line.c_str() + line.rfind(':') + 1);
      line.clear();
    }
    ::close(out[0]);
    while (port_ > 0 && Clock::now() < deadline) {
      httplib::Client c("127.0.0.1", port_);
      auto res = c.Get("/health");
      if (res && res->status == 200) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    throw std::runtime_error("internvl-server did not become ready");
  }
  ~Server() {
    ::kill(pid_, SIGTERM);
    int status;
    ::waitpid(pid_, &status, 0);
  }
  int port() const { return port_; }

 private:
  pid_t pid_ = -1;
  int port_ = -1;
};

Run run_server(const Server& server, const std::string& prompt, int tokens) {
  const nlohmann::json body = {{"messages", {{{"role", "user"}, {"content", prompt}}}},
                               {"stream", true},
                               {"max_tokens", tokens},
                               {"temperature", 0},
                               {"return_token_ids", true}};
  httplib::Client client("127.0.0.1", server.port());
  client.set_read_timeout(600, 0);
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/chat/completions";
  req.headers = {{"Content-Type", "application/json"}};
  req.body = body.dump();
  Run r;
  std::string pending;
  Clock::time_point first{}, last{};
  // SSE: events are "data: {...}" lines; a chunk may end mid-line, so keep the tail.
  req.content_receiver = [&](const char* data, size_t size, uint64_t, uint64_t) {
    const auto now = Clock::now();
    pending.append(data, size);
    for (size_t nl; (nl = pending.find('\n')) != std::string::npos; pending.erase(0, nl + 1)) {
      const std::string line = pending.substr(0, nl);
      if (line.rfind("data: ", 0) != 0 || line == "data: [DONE]") continue;
      const auto chunk = nlohmann::json::parse(line.substr(6));
      if (!chunk.contains("choices") || chunk["choices"].empty()) continue;
      const auto& choice = chunk["choices"][0];
      const auto& delta = choice.value("delta", nlohmann::json::object());
      if (delta.contains("content") && delta["content"].is_string()) {
        const std::string piece = delta["content"];
        if (!piece.empty()) {
          last = now;
          if (first == Clock::time_point{}) first = now;
          r.text += piece;
        }
      }
      if (choice.contains("token_ids")) r.tokens = static_cast<int>(choice["token_ids"].size());
      if (choice.contains("finish_reason") && choice["finish_reason"].is_string()) r.finish = choice["finish_reason"];
    }
    return true;
  };
  const auto start = Clock::now();
  auto res = client.send(req);
  if (!res || res->status != 200) throw std::runtime_error("POST /v1/chat/completions failed");
  finish_run(r, start, first, last);
  return r;
}

std::string arg_value(int& i, int argc, char** argv) {
  if (i + 1 >= argc) throw std::invalid_argument(std::string(argv[i]) + " needs a value");
  return argv[++i];
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir, prompt = "Write a long story about a lighthouse keeper.", server_tool = INTERNVL_SERVER_TOOL;
  int tokens = 128, threads = 0, runs = 3;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--prompt") prompt = arg_value(i, argc, argv);
      else if (a == "--tokens") tokens = std::stoi(arg_value(i, argc, argv));
      else if (a == "--threads") threads = std::stoi(arg_value(i, argc, argv));
      else if (a == "--runs") runs = std::stoi(arg_value(i, argc, argv));
      else if (a == "--server") server_tool = arg_value(i, argc, argv);
      else if (dir.empty() && a[0] != '-') dir = a;
      else throw std::invalid_argument("unknown argument " + a);
    }
    if (dir.empty()) throw std::invalid_argument("usage: server_bench DIR [--prompt TEXT] [--tokens N] [--threads T] [--runs R]");

    internvl::LoadOptions load;
    load.num_threads = threads;
    const auto model = internvl::Model::load(dir, load);
    std::vector<std::string> server_args = {"-m", dir};
    if (threads > 0) server_args.insert(server_args.end(), {"--threads", std::to_string(threads)});
    Server server(server_tool, server_args);

    // One warm-up each (first-call allocations, page faults of the weights), then alternate.
    run_in_process(model, prompt, 8);
    run_server(server, prompt, 8);
    Run best_lib, best_srv;
    best_lib.ttft_s = best_srv.ttft_s = 1e30;
    std::string lib_text, srv_text;
    for (int i = 0; i < runs; ++i) {
      for (int which = 0; which < 2; ++which) {
        const Run r = which == 0 ? run_in_process(model, prompt, tokens) : run_server(server, prompt, tokens);
        Run& best = which == 0 ? best_lib : best_srv;
        std::fprintf(stderr, "run %d %-10s ttft %.1f ms  decode %.2f tok/s  %d tokens (%s)\n", i,
                     which == 0 ? "in-process" : "server", r.ttft_s * 1e3, r.decode_tps, r.tokens, r.finish.c_str());
        (which == 0 ? lib_text : srv_text) = r.text;
        best.ttft_s = std::min(best.ttft_s, r.ttft_s);
        best.decode_tps = std::max(best.decode_tps, r.decode_tps);
        best.tokens = r.tokens;
        best.finish = r.finish;
      }
    }
    if (lib_text != srv_text) {
      std::fprintf(stderr, "MISMATCH: in-process and server texts differ\n in-process: %s\n server: %s\n",
                   lib_text.c_str(), srv_text.c_str());
      return 1;
    }
    if (best_lib.tokens != tokens || best_srv.tokens != tokens) {
      std::fprintf(stderr, "warning: generation ended early (%d / %d of %d tokens)\n", best_lib.tokens,
                   best_srv.tokens, tokens);
    }
    std::printf("%s, %d new tokens, threads %d, best of %d; texts identical (%zu bytes)\n", dir.c_str(), tokens,
                threads, runs, lib_text.size());
    std::printf("| path       | TTFT ms | decode tok/s |\n|------------|--------:|-------------:|\n");
    std::printf("| in-process | %7.1f | %12.2f |\n", best_lib.ttft_s * 1e3, best_lib.decode_tps);
    std::printf("| server     | %7.1f | %12.2f |\n", best_srv.ttft_s * 1e3, best_srv.decode_tps);
    std::printf("| server / in-process | %.3f | %.3f |\n", best_srv.ttft_s / best_lib.ttft_s,
                best_srv.decode_tps / best_lib.decode_tps);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "server_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
