// internvl-server: the OpenAI-compatible HTTP front of one loaded checkpoint.
#pragma once

#include <internvl/internvl.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "api_request.h"

namespace internvl::server {

struct ServerOptions {
  std::string model_path;
  std::string model_name;    // served name; empty: the model folder's name
  std::string host = "127.0.0.1";
  int port = 8080;           // 0: an ephemeral port (printed on stdout)
  std::string api_key;       // empty: no authentication
  std::string index_path;    // /v1/search over this index (retrieval checkpoints)
  int threads = 0;           // HTTP worker threads; 0: parallel + max_queue + 4
  int parallel = 1;          // requests computing at once
  int max_queue = 16;        // requests waiting for a slot; more get 503
  int64_t max_body_bytes = 32 << 20;
  std::string allow_file_root;     // local image paths only below this folder; empty: none
  bool allow_remote_images = false;
  int64_t remote_image_max_bytes = 20 << 20;
  int remote_image_timeout_s = 10;
  int remote_image_max_redirects = 3;
  int shutdown_grace_ms = 5000;    // on SIGINT/SIGTERM, running requests get this long, then are cancelled
  RequestLimits limits;
  LoadOptions load;
};

// Runs the server: binds, loads the model in the background (GET /health says "loading" until
// then) and serves until stop() or a load failure. on_listening gets the bound port.
class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Returns 0 after a clean stop, 1 when binding or loading failed (message on stderr).
  int run(const std::function<void(int port)>& on_listening = {});
  // Stop accepting; running requests get the grace period, then are cancelled; run() returns.
  // Safe to call from any thread, once or more.
  void stop();

  struct State;

 private:
  std::unique_ptr<State> state_;
};

}  // namespace internvl::server
