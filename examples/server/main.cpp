// internvl-server: an OpenAI-compatible HTTP server for one checkpoint (chat, embeddings, search)
// with a small web page. Built only on the public API.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <iostream>
#include <atomic>
#include <string>
#include <thread>

#include <vector>

#include "../common/suggest.h"
#include "internvl/version.h"
#include "server.h"

namespace {

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

void print_usage(std::FILE* out) {
  std::fputs(
      "usage: internvl-server -m MODEL [options]\n"
      "\n"
      "Serves one checkpoint over HTTP with the OpenAI API: /v1/chat/completions (InternVL-Chat),\n"
      "/v1/embeddings and /v1/search (InternVL-C/G), /v1/models, /health, and a web page at /.\n"
      "\n"
      "  -m, --model MODEL          checkpoint folder, or a Hugging Face id in the local cache\n"
      "      --name NAME            model name served (default: the folder's name)\n"
      "      --host HOST            address to bind (default 127.0.0.1)\n"
      "      --port N               port (default 8080; 0 picks a free one, printed on stdout)\n"
      "      --api-key KEY          require 'Authorization: Bearer KEY' on /v1/ (also $INTERNVL_API_KEY)\n"
      "      --index FILE           an index from internvl-retrieve, searched by /v1/search\n"
      "      --parallel N           requests computing at once; their decoding is batched\n"
      "                             (one forward per step for all of them; default 1)\n"
      "      --max-queue N          requests waiting for a slot; beyond: 503 + Retry-After (default 16)\n"
      "      --http-threads N       HTTP worker threads (default parallel + max-queue + 4)\n"
      "      --max-body-bytes N     largest request body (default 33554432)\n"
      "      --max-images N         images in one chat request (default 16)\n"
      "      --max-tokens N         completion budget of a request that names none (default 2048,\n"
      "                             lowered to what the context leaves)\n"
      "      --allow-file-root DIR  accept local image paths (and file:// URLs) below DIR\n"
      "      --allow-remote-images  fetch http(s) image URLs (off: a server that fetches what\n"
      "                             clients name can be turned against its own network)\n"
      "      --remote-image-max-bytes N, --remote-image-timeout S, --remote-image-max-redirects N\n"
      "                             limits of those fetches (20 MiB, 10 s, 3)\n"
      "      --shutdown-grace-ms N  on SIGINT/SIGTERM, running requests get this long (default 5000)\n"
      "  -t, --threads N            CPU threads for the model (default: LibTorch's)\n"
      "      --device DEV           cpu, cuda or cuda:N (default cpu)\n"
      "      --dtype T              fp32, bf16 or fp16 (default fp32)\n"
      "      --version              print the version\n"
      "  -h, --help                 this help\n"
      "\n"
      "Exit status: 0 after a clean shutdown, 1 when the model cannot be loaded or the port bound,\n"
      "2 for bad usage.\n",
      out);
}

int64_t parse_int(const std::string& flag, const std::string& text, int64_t lo, int64_t hi) {
  char* end = nullptr;
  errno = 0;
  const long long value = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno != 0 || value < lo || value > hi) {
    throw UsageError(flag + " takes an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got '" + text + "'");
  }
  return value;
}

struct Command {
  internvl::server::ServerOptions options;
  bool help = false;
  bool version = false;
};

// Every long flag, for "did you mean" on a typo.
const std::vector<std::string> kFlags = {
    "--help", "--version", "--model", "--name", "--host", "--port", "--api-key", "--index", "--parallel",
    "--max-queue", "--http-threads", "--max-body-bytes", "--max-images", "--max-tokens", "--allow-file-root",
    "--allow-remote-images", "--remote-image-max-bytes", "--remote-image-timeout", "--remote-image-max-redirects",
    "--shutdown-grace-ms", "--threads", "--device", "--dtype"};

Command parse_command_line(int argc, char** argv) {
  Command command;
  auto& o = command.options;
  if (const char* key = std::getenv("INTERNVL_API_KEY")) o.api_key = key;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw UsageError(flag + " needs a value");
      return argv[++i];
    };
    if (flag == "-h" || flag == "--help") command.help = true;
    else if (flag == "--version") command.version = true;
    else if (flag == "-m" || flag == "--model") o.model_path = value();
    else if (flag == "--name") o.model_name = value();
    else if (flag == "--host") o.host = value();
    else if (flag == "--port") o.port = static_cast<int>(parse_int(flag, value(), 0, 65535));
    else if (flag == "--api-key") o.api_key = value();
    else if (flag == "--index") o.index_path = value();
    else if (flag == "--parallel") o.parallel = static_cast<int>(parse_int(flag, value(), 1, 1024));
    else if (flag == "--max-queue") o.max_queue = static_cast<int>(parse_int(flag, value(), 0, 100000));
    else if (flag == "--http-threads") o.threads = static_cast<int>(parse_int(flag, value(), 1, 4096));
    else if (flag == "--max-body-bytes") o.max_body_bytes = parse_int(flag, value(), 1024, int64_t{1} << 34);
    else if (flag == "--max-images") o.limits.max_images = static_cast<int>(parse_int(flag, value(), 0, 4096));
    else if (flag == "--max-tokens") o.limits.default_max_tokens = static_cast<int>(parse_int(flag, value(), 1, 1 << 30));
    else if (flag == "--allow-file-root") o.allow_file_root = value();
    else if (flag == "--allow-remote-images") o.allow_remote_images = true;
    else if (flag == "--remote-image-max-bytes") o.remote_image_max_bytes = parse_int(flag, value(), 1, int64_t{1} << 34);
    else if (flag == "--remote-image-timeout") o.remote_image_timeout_s = static_cast<int>(parse_int(flag, value(), 1, 3600));
    else if (flag == "--remote-image-max-redirects") o.remote_image_max_redirects = static_cast<int>(parse_int(flag, value(), 0, 100));
    else if (flag == "--shutdown-grace-ms") o.shutdown_grace_ms = static_cast<int>(parse_int(flag, value(), 0, 3600000));
    else if (flag == "-t" || flag == "--threads") o.load.num_threads = static_cast<int>(parse_int(flag, value(), 1, 4096));
    else if (flag == "--device") {
      try {
        internvl::set_device(o.load, value());
      } catch (const internvl::Error& e) {
        throw UsageError(std::string("--device: ") + e.what());
      }
    } else if (flag == "--dtype") {
      try {
        o.load.dtype = internvl::parse_dtype(value());
      } catch (const internvl::Error& e) {
        throw UsageError(std::string("--dtype: ") + e.what());
      }
    } else {
      throw UsageError("unknown option '" + flag + "'" + tool_common::did_you_mean(flag, kFlags) + "; see --help");
    }
  }
  if (!command.help && !command.version && o.model_path.empty()) throw UsageError("-m/--model is required");
  return command;
}

}  // namespace

int main(int argc, char** argv) {
  Command command;
  try {
    command = parse_command_line(argc, argv);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "internvl-server: %s\n", e.what());
    return 2;
  }
  if (command.help) {
    print_usage(stdout);
    return 0;
  }
  if (command.version) {
    std::printf("internvl-server %s\n", INTERNVL_VERSION_STRING);
    return 0;
  }
  // Signals go to one thread that asks the server to stop; every other thread blocks them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  internvl::server::Server server(command.options);
  std::atomic<bool> done{false};
  std::thread signal_thread([&] {
    const timespec tick{0, 200 * 1000 * 1000};
    while (!done) {
      if (sigtimedwait(&signals, nullptr, &tick) > 0) {
        std::fprintf(stderr, "internvl-server: stopping\n");
        server.stop();
      }
    }
  });
  const int status = server.run([&](int port) {
    std::printf("internvl-server: listening on http://%s:%d\n", command.options.host.c_str(), port);
    std::fflush(stdout);
  });
  done = true;
  signal_thread.join();
  return status;
}
