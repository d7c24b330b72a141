#include "server.h"

#include "../common/user_terms.h"

#include <httplib.h>
#include <limits.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <deque>
#include <fstream>
#include <future>
#include <iostream>
#include <mutex>
#include <optional>
#include <random>
#include <regex>
#include <sstream>
#include <sys/socket.h>
#include <sys/stat.h>
#include <thread>

#include "stream_text.h"
#include "web_page.h"

namespace internvl::server {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

ApiError unavailable(const std::string& message, const std::string& code) {
  return ApiError(503, "unavailable_error", message, "", code);
}

// ---- admission: --parallel slots, a bounded FIFO queue behind them -------------------------------

class Admission {
 public:
  Admission(int slots, int queue) : slots_(slots), queue_(queue) {}

  class Ticket {
   public:
    Ticket(Admission* owner, uint64_t number) : owner_(owner), number_(number) {}
    Ticket(Ticket&& other) noexcept : owner_(other.owner_), number_(other.number_), running_(other.running_) {
      other.owner_ = nullptr;
    }
    Ticket(const Ticket&) = delete;
    ~Ticket() {
      if (owner_) owner_->leave(*this);
    }
    // Blocks until this request's turn; false when the server is stopping.
    bool wait() { return owner_->wait(*this); }

   private:
    friend class Admission;
    Admission* owner_;
    uint64_t number_;
    bool running_ = false;
  };

  // nullopt: the queue is full (or the server stops) → 503.
  std::optional<Ticket> enter() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return std::nullopt;
    if (static_cast<int>(waiting_.size()) >= queue_ && running_ >= slots_) return std::nullopt;
    const uint64_t number = next_++;
    waiting_.push_back(number);
    return Ticket(this, number);
  }

  void stop() {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    changed_.notify_all();
  }

  int running() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return running_;
  }
  int waiting() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return static_cast<int>(waiting_.size());
  }
  // Blocks until no request runs, or the deadline passes; true when idle.
  bool wait_idle(Clock::time_point deadline) {
    std::unique_lock<std::mutex> lock(mutex_);
    return changed_.wait_until(lock, deadline, [&] { return running_ == 0; });
  }

 private:
  bool wait(Ticket& ticket) {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return stopping_ || (running_ < slots_ && waiting_.front() == ticket.number_); });
    if (stopping_) return false;
    waiting_.pop_front();
    ++running_;
    ticket.running_ = true;
    changed_.notify_all();
    return true;
  }
  void leave(Ticket& ticket) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (ticket.running_) {
      --running_;
    } else {
      waiting_.erase(std::remove(waiting_.begin(), waiting_.end(), ticket.number_), waiting_.end());
    }
    changed_.notify_all();
  }

  const int slots_;
  const int queue_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<uint64_t> waiting_;
  uint64_t next_ = 0;
  int running_ = 0;
  bool stopping_ = false;
};

// The --parallel threads that run the model. All model work runs here, not on the HTTP threads:
// each thread that calls into LibTorch gets its own OpenMP team, so compute threads stay
// parallel x intra-op threads however many HTTP threads there are.
class Workers {
 public:
  explicit Workers(int n) {
    for (int i = 0; i < n; ++i) threads_.emplace_back([this] { loop(); });
  }
  ~Workers() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      done_ = true;
    }
    changed_.notify_all();
    for (auto& t : threads_) t.join();
  }
  // Admission keeps at most n jobs in flight, so a job starts at once.
  std::future<void> run(std::function<void()> job) {
    auto task = std::make_shared<std::packaged_task<void()>>(std::move(job));
    auto future = task->get_future();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      jobs_.push_back([task] { (*task)(); });
    }
    changed_.notify_one();
    return future;
  }

 private:
  void loop() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [&] { return done_ || !jobs_.empty(); });
        if (jobs_.empty()) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
    }
  }
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
  bool done_ = false;
};

// Runs `fn` on a worker and waits for it, rethrowing what it threw.
template <typename Fn>
auto on_worker(Workers& workers, Fn&& fn) -> decltype(fn()) {
  using Result = decltype(fn());
  std::optional<Result> result;
  workers.run([&] { result.emplace(fn()); }).get();
  return std::move(*result);
}

std::string base_name(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

bool is_directory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::optional<std::string> real_path(const std::string& path) {
  char buffer[PATH_MAX];
  if (!::realpath(path.c_str(), buffer)) return std::nullopt;
  return std::string(buffer);
}

std::optional<std::vector<uint8_t>> read_whole_file(const std::string& path, int64_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::vector<uint8_t> bytes;
  char chunk[65536];
  while (in) {
    in.read(chunk, sizeof chunk);
    bytes.insert(bytes.end(), chunk, chunk + in.gcount());
    if (static_cast<int64_t>(bytes.size()) > max_bytes) return std::nullopt;
  }
  return bytes;
}

std::string content_type_of(const std::vector<uint8_t>& bytes) {
  auto starts = [&](const char* magic, size_t n) { return bytes.size() >= n && std::equal(magic, magic + n, bytes.begin()); };
  if (starts("\xFF\xD8\xFF", 3)) return "image/jpeg";
  if (starts("\x89PNG", 4)) return "image/png";
  if (starts("GIF8", 4)) return "image/gif";
  if (starts("BM", 2)) return "image/bmp";
  if (bytes.size() >= 12 && std::equal(bytes.begin() + 8, bytes.begin() + 12, "WEBP")) return "image/webp";
  return "application/octet-stream";
}

int64_t unix_time() { return static_cast<int64_t>(std::time(nullptr)); }

}  // namespace

// ---- shared state --------------------------------------------------------------------------------

struct Server::State {
  explicit State(ServerOptions o)
      : options(std::move(o)),
        admission(std::max(1, options.parallel), std::max(0, options.max_queue)),
        workers(std::max(1, options.parallel)) {}

  ServerOptions options;
  httplib::Server http;
  Admission admission;
  Workers workers;
  std::string name;

  std::mutex load_mutex;
  std::optional<Model> model;  // set once loaded
  std::optional<Index> index;
  std::atomic<bool> ready{false};
  std::atomic<bool> stopping{false};
  std::atomic<bool> cancel_all{false};
  std::atomic<uint64_t> next_id{0};
  std::once_flag stop_once;
  std::thread stopper;
  std::atomic<bool> load_failed{false};
  std::string load_error;  // written before load_failed is set

  bool is_chat() const { return model->info().architecture == "InternVLChatModel"; }

  std::vector<std::string> model_names() const {
    if (!model) return {name};
    if (is_chat()) return {name};
    return {name, name + "-c", name + "-g"};
  }

  // The model a request names: empty or one of model_names(); the mode suffix for retrieval.
  std::optional<EmbedMode> check_model(const std::string& requested) const {
    if (requested.empty() || requested == name) return std::nullopt;
    if (!is_chat()) {
      if (requested == name + "-c") return EmbedMode::kC;
      if (requested == name + "-g") return EmbedMode::kG;
    }
    std::string names;
    for (const auto& n : model_names()) names += (names.empty() ? "" : ", ") + n;
    throw ApiError(404, "invalid_request_error", "the model '" + requested + "' does not exist; this server has " + names,
                   "model", "model_not_found");
  }

  Image resolve_image(const ImageRef& ref) const;
  std::vector<uint8_t> fetch_remote(const std::string& url, const std::string& param) const;
};

std::vector<uint8_t> Server::State::fetch_remote(const std::string& first_url, const std::string& param) const {
  static const std::regex url_pattern(R"(^(https?)://([^/?#]+)([^#]*))", std::regex::icase);
  const auto deadline = Clock::now() + std::chrono::seconds(options.remote_image_timeout_s);
  std::string url = first_url;
  for (int redirect = 0;; ++redirect) {
    std::smatch match;
    if (!std::regex_search(url, match, url_pattern)) {
      throw invalid_request(param, param + ": '" + url + "' is not an http(s) URL", "invalid_image_url");
    }
    const std::string origin = match[1].str() + "://" + match[2].str();
    std::string target = match[3].str();
    if (target.empty()) target = "/";
    httplib::Client client(origin);
    client.set_follow_location(false);
    client.set_connection_timeout(options.remote_image_timeout_s, 0);
    client.set_read_timeout(options.remote_image_timeout_s, 0);
    client.set_write_timeout(options.remote_image_timeout_s, 0);
    std::vector<uint8_t> body;
    bool too_large = false;
    bool too_slow = false;
    auto result = client.Get(
        target, httplib::Headers{},
        [&](const httplib::Response& response) {
          const auto length = response.get_header_value("Content-Length");
          if (!length.empty() && std::strtoll(length.c_str(), nullptr, 10) > options.remote_image_max_bytes) {
            too_large = true;
            return false;
          }
          return true;
        },
        [&](const char* data, size_t size) {
          body.insert(body.end(), data, data + size);
          if (static_cast<int64_t>(body.size()) > options.remote_image_max_bytes) too_large = true;
          if (Clock::now() > deadline) too_slow = true;
          return !too_large && !too_slow;
        });
    if (too_large) {
      throw invalid_request(param, param + ": the image at '" + first_url + "' is larger than " +
                                       std::to_string(options.remote_image_max_bytes) + " bytes",
                            "image_too_large");
    }
    if (too_slow || Clock::now() > deadline) {
      throw invalid_request(param, param + ": fetching '" + first_url + "' took longer than " +
                                       std::to_string(options.remote_image_timeout_s) + " s",
                            "image_fetch_timeout");
    }
    if (!result) {
      throw invalid_request(param, param + ": fetching '" + url + "' failed: " + httplib::to_string(result.error()),
                            "image_fetch_failed");
    }
    const int status = result->status;
    if (status >= 300 && status < 400 && result->has_header("Location")) {
      if (redirect >= options.remote_image_max_redirects) {
        throw invalid_request(param, param + ": '" + first_url + "' redirects more than " +
                                         std::to_string(options.remote_image_max_redirects) + " times",
                              "too_many_redirects");
      }
      const auto location = result->get_header_value("Location");
      url = location.rfind("/", 0) == 0 ? origin + location : location;
      continue;
    }
    if (status != 200) {
      throw invalid_request(param, param + ": fetching '" + url + "' answered HTTP " + std::to_string(status),
                            "image_fetch_failed");
    }
    return body;
  }
}

Image Server::State::resolve_image(const ImageRef& ref) const {
  const auto& url = ref.url;
  if (url.rfind("data:", 0) == 0) return Image::from_bytes(decode_data_url(url, ref.param), ref.param);
  auto lower = url.substr(0, 8);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  if (lower.rfind("http://", 0) == 0 || lower.rfind("https://", 0) == 0) {
    if (!options.allow_remote_images) {
      throw invalid_request(ref.param, ref.param + ": http(s) image URLs are off (start the server with "
                                                    "--allow-remote-images); send the image as a data: URL",
                            "remote_images_disabled");
    }
    return Image::from_bytes(fetch_remote(url, ref.param), ref.param);
  }
  std::string path = url.rfind("file://", 0) == 0 ? url.substr(7) : url;
  if (options.allow_file_root.empty()) {
    throw invalid_request(ref.param, ref.param + ": local image paths are off (start the server with "
                                                  "--allow-file-root DIR); send the image as a data: URL",
                          "local_images_disabled");
  }
  const auto root = real_path(options.allow_file_root);
  const auto resolved = real_path(path);
  if (!root || !resolved || resolved->compare(0, root->size(), *root) != 0 ||
      (resolved->size() > root->size() && (*resolved)[root->size()] != '/' && *root != "/")) {
    throw invalid_request(ref.param, ref.param + ": '" + path + "' is not a file under the allowed root",
                          "image_not_found");
  }
  auto bytes = read_whole_file(*resolved, options.max_body_bytes);
  if (!bytes) throw invalid_request(ref.param, ref.param + ": cannot read '" + path + "'", "image_not_found");
  return Image::from_bytes(std::move(*bytes), ref.param);
}

namespace {

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void send_error(httplib::Response& res, const ApiError& error) {
  if (error.status == 503) res.set_header("Retry-After", "1");
  if (error.status == 401) res.set_header("WWW-Authenticate", "Bearer");
  send_json(res, error.status, error_body(error));
}

// Library errors → HTTP: bad input 400 (naming the image when an image was bad), the rest 500.
ApiError to_api_error(const std::exception& e, const std::vector<ImageRef>& images) {
  if (const auto* api = dynamic_cast<const ApiError*>(&e)) return *api;
  const std::string message = e.what();
  if (dynamic_cast<const ImageError*>(&e)) {
    std::string param;
    for (const auto& image : images) {
      if (message.find(image.param) != std::string::npos) param = image.param;
    }
    return invalid_request(param, message, "invalid_image");
  }
  if (dynamic_cast<const InvalidArgument*>(&e)) {
    if (message.find("context") != std::string::npos) return invalid_request("messages", message, "context_length_exceeded");
    return invalid_request("", message, "invalid_value");
  }
  if (dynamic_cast<const UnsupportedError*>(&e)) return invalid_request("model", message, "unsupported");
  return ApiError(500, "server_error", message, "", "internal_error");
}

std::string openai_finish_reason(FinishReason reason) {
  return reason == FinishReason::kLength || reason == FinishReason::kCancelled ? "length" : "stop";
}

json usage_json(const ChatResult& result) {
  const auto prompt = static_cast<int64_t>(result.input_ids.size());
  const auto completion = static_cast<int64_t>(result.output_ids.size());
  return {{"prompt_tokens", prompt}, {"completion_tokens", completion}, {"total_tokens", prompt + completion}};
}

// One streamed generation: the model runs on its own thread and hands text to the HTTP thread.
struct StreamJob {
  std::mutex mutex;
  std::condition_variable changed;
  std::deque<std::string> pieces;
  bool started = false;  // first text produced (or finished)
  bool finished = false;
  std::exception_ptr error;
  ChatResult result;
  std::atomic<bool> cancelled{false};
  std::future<void> done;  // the worker's job
};

std::string sse(const json& chunk) {
  return "data: " + chunk.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
}

}  // namespace

// ---- server --------------------------------------------------------------------------------------

Server::Server(ServerOptions options) : state_(std::make_unique<State>(std::move(options))) {
  auto& s = *state_;
  s.name = !s.options.model_name.empty() ? s.options.model_name
           : is_directory(s.options.model_path) ? base_name(s.options.model_path)
                                                : s.options.model_path;
}

Server::~Server() {
  stop();
  if (state_->stopper.joinable()) state_->stopper.join();
}

void Server::stop() {
  auto* s = state_.get();
  std::call_once(s->stop_once, [s] {
    s->stopping = true;
    s->admission.stop();
    // Off the caller's thread: a signal thread must not block on the grace period.
    s->stopper = std::thread([s] {
      s->admission.wait_idle(Clock::now() + std::chrono::milliseconds(s->options.shutdown_grace_ms));
      s->cancel_all = true;
      s->admission.wait_idle(Clock::now() + std::chrono::seconds(30));
      s->http.stop();
    });
  });
}

int Server::run(const std::function<void(int port)>& on_listening) {
  auto& s = *state_;
  auto& http = s.http;
  const auto& o = s.options;
  const int threads = o.threads > 0 ? o.threads : std::max(1, o.parallel) + std::max(0, o.max_queue) + 4;
  http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http.set_payload_max_length(static_cast<size_t>(o.max_body_bytes));
  http.set_read_timeout(30, 0);
  http.set_write_timeout(30, 0);
  http.set_keep_alive_timeout(5);
  // Each SSE chunk is a small write: without this, Nagle's algorithm holds it back for the
  // previous one's (delayed) ACK.
  http.set_tcp_nodelay(true);

  // Authentication and readiness, before routing (the page and /health stay public).
  http.set_pre_routing_handler([&s](const httplib::Request& req, httplib::Response& res) {
    const bool api = req.path.rfind("/v1/", 0) == 0;
    if (!api) return httplib::Server::HandlerResponse::Unhandled;
    if (!s.options.api_key.empty()) {
      const auto header = req.get_header_value("Authorization");
      if (header != "Bearer " + s.options.api_key) {
        send_error(res, ApiError(401, "authentication_error",
                                 header.empty() ? "missing Authorization: Bearer header" : "invalid API key", "",
                                 "invalid_api_key"));
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    if (!s.ready) {
      send_error(res, !s.load_failed ? unavailable("the model is loading", "model_loading")
                                           : unavailable("the model failed to load", "model_load_failed"));
      return httplib::Server::HandlerResponse::Handled;
    }
    if (s.stopping) {
      send_error(res, unavailable("the server is shutting down", "shutting_down"));
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  // Errors httplib answers itself (413, 404, 400 for broken requests) get the OpenAI error body.
  http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 413) {
      send_error(res, ApiError(413, "invalid_request_error", "the request body is larger than --max-body-bytes", "body",
                               "body_too_large"));
    } else if (res.status == 404) {
      send_error(res, ApiError(404, "invalid_request_error", "no route for " + req.method + " " + req.path, "",
                               "not_found"));
    } else {
      send_error(res, ApiError(res.status, "invalid_request_error", "bad request", "", "bad_request"));
    }
  });
  http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      send_error(res, to_api_error(e, {}));
    } catch (...) {
      send_error(res, ApiError(500, "server_error", "unknown error", "", "internal_error"));
    }
  });

  http.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(web_page(), "text/html; charset=utf-8");
  });
  http.Get("/health", [&s](const httplib::Request&, httplib::Response& res) {
    if (!s.ready) {
      send_json(res, 503, {{"status", s.load_failed ? "error" : "loading"}});
      return;
    }
    json body = {{"status", s.stopping ? "stopping" : "ok"},
                 {"kind", s.is_chat() ? "chat" : "retrieval"},
                 {"models", s.model_names()},
                 {"search", s.index.has_value()},
                 {"running", s.admission.running()},
                 {"waiting", s.admission.waiting()}};
    send_json(res, 200, body);
  });
  http.Get("/v1/models", [&s](const httplib::Request&, httplib::Response& res) {
    json data = json::array();
    for (const auto& n : s.model_names()) {
      data.push_back({{"id", n}, {"object", "model"}, {"created", 0}, {"owned_by", "internvl-cpp"}});
    }
    send_json(res, 200, {{"object", "list"}, {"data", data}});
  });

  http.Get(R"(/v1/models/(.+))", [&s](const httplib::Request& req, httplib::Response& res) {
    const std::string id = req.matches[1];
    const auto names = s.model_names();
    if (std::find(names.begin(), names.end(), id) == names.end()) {
      send_error(res, ApiError(404, "invalid_request_error", "the model '" + id + "' does not exist", "model",
                               "model_not_found"));
      return;
    }
    send_json(res, 200, {{"id", id}, {"object", "model"}, {"created", 0}, {"owned_by", "internvl-cpp"}});
  });

  // One line per request on stderr, as llama-server and vLLM log them.
  http.set_logger([](const httplib::Request& req, const httplib::Response& res) {
    std::fprintf(stderr, "internvl-server: %s %s %d\n", req.method.c_str(), req.path.c_str(), res.status);
  });

  http.Post("/v1/chat/completions", [&s](const httplib::Request& req, httplib::Response& res) {
    ChatCompletionRequest request;
    try {
      request = parse_chat_request(parse_body(req.body), s.options.limits);
      s.check_model(request.model);
      if (!s.is_chat()) {
        throw invalid_request("model", "'" + s.name + "' is a retrieval checkpoint (InternVLModel); chat needs InternVL-Chat",
                              "unsupported");
      }
      for (const auto& image : request.images) request.chat.images.push_back(s.resolve_image(image));
      if (request.chat.generation.do_sample && !request.seed_given) request.chat.generation.seed = std::random_device{}();
    } catch (const std::exception& e) {
      send_error(res, to_api_error(e, request.images));
      return;
    }
    auto ticket = s.admission.enter();
    if (!ticket) {
      send_error(res, unavailable("the server is busy: " + std::to_string(s.options.max_queue) +
                                      " requests are already waiting; retry later",
                                  "server_busy"));
      return;
    }
    const std::string id = "chatcmpl-" + std::to_string(unix_time()) + "-" + std::to_string(s.next_id++);
    const int64_t created = unix_time();

    if (!request.stream) {
      if (!ticket->wait()) {
        send_error(res, unavailable("the server is shutting down", "shutting_down"));
        return;
      }
      try {
        const auto result = on_worker(s.workers, [&] {
          return s.model->chat(request.chat, [&s](const std::string&) { return !s.cancel_all.load(); });
        });
        json choice = {{"index", 0},
                       {"message", {{"role", "assistant"}, {"content", result.response}}},
                       {"finish_reason", openai_finish_reason(result.finish_reason)},
                       {"logprobs", nullptr}};
        json body = {{"id", id},        {"object", "chat.completion"}, {"created", created},
                     {"model", s.name}, {"choices", json::array()},    {"usage", usage_json(result)}};
        if (request.return_token_ids) {
          choice["token_ids"] = result.output_ids;
          body["prompt_token_ids"] = result.input_ids;
        }
        body["choices"].push_back(choice);
        send_json(res, 200, body);
      } catch (const std::exception& e) {
        send_error(res, to_api_error(e, request.images));
      }
      return;
    }

    // Streamed: wait for the first text (or an error) before answering, so that errors found
    // while building the prompt are still a 4xx.
    if (!ticket->wait()) {
      send_error(res, unavailable("the server is shutting down", "shutting_down"));
      return;
    }
    auto job = std::make_shared<StreamJob>();
    auto shared_ticket = std::make_shared<Admission::Ticket>(std::move(*ticket));
    auto shared_request = std::make_shared<ChatCompletionRequest>(std::move(request));
    job->done = s.workers.run([job, shared_request, &s] {
      try {
        job->result = s.model->chat(shared_request->chat, [&](const std::string& text) {
          if (job->cancelled || s.cancel_all) return false;
          std::lock_guard<std::mutex> lock(job->mutex);
          job->pieces.push_back(text);
          job->started = true;
          job->changed.notify_all();
          return true;
        });
      } catch (...) {
        std::lock_guard<std::mutex> lock(job->mutex);
        job->error = std::current_exception();
      }
      std::lock_guard<std::mutex> lock(job->mutex);
      job->started = job->finished = true;
      job->changed.notify_all();
    });
    {
      std::unique_lock<std::mutex> lock(job->mutex);
      job->changed.wait(lock, [&] { return job->started; });
      if (job->error && job->pieces.empty()) {
        lock.unlock();
        job->done.wait();
        try {
          std::rethrow_exception(job->error);
        } catch (const std::exception& e) {
          send_error(res, to_api_error(e, shared_request->images));
        }
        return;
      }
    }
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    auto base = std::make_shared<json>(json{{"id", id}, {"object", "chat.completion.chunk"}, {"created", created},
                                            {"model", s.name}});
    auto text_filter = std::make_shared<StreamText>(shared_request->chat.generation.stop_strings);
    auto first = std::make_shared<bool>(true);
    res.set_chunked_content_provider(
        "text/event-stream",
        [job, base, text_filter, first, shared_request](size_t, httplib::DataSink& sink) {
          auto chunk = [&](const json& delta, const json& finish) {
            json c = *base;
            c["choices"] = json::array({{{"index", 0}, {"delta", delta}, {"logprobs", nullptr}, {"finish_reason", finish}}});
            if (shared_request->include_usage) c["usage"] = nullptr;
            return c;
          };
          auto write = [&](const std::string& text) {
            if (!sink.write(text.data(), text.size())) {
              job->cancelled = true;
              return false;
            }
            return true;
          };
          if (*first) {
            *first = false;
            json c = chunk({{"role", "assistant"}, {"content", ""}}, nullptr);
            if (shared_request->return_token_ids) c["prompt_token_ids"] = json::array();
            if (!write(sse(c))) return false;
          }
          std::deque<std::string> pieces;
          bool finished;
          {
            std::unique_lock<std::mutex> lock(job->mutex);
            job->changed.wait_for(lock, std::chrono::milliseconds(200),
                                  [&] { return !job->pieces.empty() || job->finished; });
            pieces.swap(job->pieces);
            finished = job->finished;
          }
          for (const auto& piece : pieces) {
            const auto text = text_filter->push(piece);
            if (!text.empty() && !write(sse(chunk({{"content", text}}, nullptr)))) return false;
          }
          if (!finished) {
            // Keeps a dead client from going unnoticed while the model is between pieces.
            if (pieces.empty() && !sink.is_writable()) {
              job->cancelled = true;
              return false;
            }
            return true;
          }
          job->done.wait();
          if (job->error) {
            std::string message = "generation failed";
            try {
              std::rethrow_exception(job->error);
            } catch (const std::exception& e) {
              message = e.what();
            }
            write(sse(error_body(ApiError(500, "server_error", message, "", "internal_error"))));
            sink.done();
            return true;
          }
          const auto& result = job->result;
          const auto rest = text_filter->finish(result.response);
          if (!rest.empty() && !write(sse(chunk({{"content", rest}}, nullptr)))) return false;
          json last = chunk(json::object(), openai_finish_reason(result.finish_reason));
          if (shared_request->return_token_ids) {
            last["choices"][0]["token_ids"] = result.output_ids;
            last["prompt_token_ids"] = result.input_ids;
          }
          if (!write(sse(last))) return false;
          if (shared_request->include_usage) {
            json usage = *base;
            usage["choices"] = json::array();
            usage["usage"] = usage_json(result);
            if (!write(sse(usage))) return false;
          }
          if (!write("data: [DONE]\n\n")) return false;
          sink.done();
          return true;
        },
        [job, shared_ticket](bool) mutable {
          job->cancelled = true;
          if (job->done.valid()) job->done.wait();
          shared_ticket.reset();  // frees the slot once the model has stopped
        });
  });

  http.Post("/v1/embeddings", [&s](const httplib::Request& req, httplib::Response& res) {
    EmbeddingRequest request;
    std::vector<ImageRef> refs;
    try {
      request = parse_embedding_request(parse_body(req.body), s.options.limits);
      const auto named_mode = s.check_model(request.model);
      if (s.is_chat()) {
        throw invalid_request("model", "'" + s.name + "' is a chat checkpoint; embeddings need InternVL-C/G (InternVLModel)",
                              "unsupported");
      }
      EmbedOptions options;
      options.mode = request.mode.value_or(named_mode.value_or(EmbedMode::kC));
      options.normalize = request.normalize;
      std::vector<std::string> texts;
      std::vector<Image> images;
      for (const auto& input : request.inputs) {
        if (input.text) texts.push_back(*input.text);
        if (input.image) {
          refs.push_back(*input.image);
          images.push_back(s.resolve_image(*input.image));
        }
      }
      auto ticket = s.admission.enter();
      if (!ticket) throw unavailable("the server is busy; retry later", "server_busy");
      if (!ticket->wait()) throw unavailable("the server is shutting down", "shutting_down");
      const Matrix text_rows = texts.empty() ? Matrix() : on_worker(s.workers, [&] { return s.model->embed_text(texts, options); });
      const Matrix image_rows =
          images.empty() ? Matrix() : on_worker(s.workers, [&] { return s.model->embed_image(images, options); });
      const int dim = static_cast<int>(texts.empty() ? image_rows.cols() : text_rows.cols());
      if (request.dimensions && *request.dimensions != dim) {
        throw invalid_request("dimensions", "this model's embeddings have " + std::to_string(dim) +
                                                " dimensions; dimensions cannot change that",
                              "unsupported_value");
      }
      json data = json::array();
      int64_t text_row = 0, image_row = 0;
      for (size_t i = 0; i < request.inputs.size(); ++i) {
        const bool is_text = request.inputs[i].text.has_value();
        const float* row = is_text ? text_rows.row(text_row++).data() : image_rows.row(image_row++).data();
        json item = {{"object", "embedding"}, {"index", i}};
        if (request.base64) {
          // Little-endian float32, as the OpenAI client decodes it (numpy frombuffer float32).
          item["embedding"] = encode_base64(reinterpret_cast<const uint8_t*>(row), sizeof(float) * dim);
        } else {
          item["embedding"] = std::vector<float>(row, row + dim);
        }
        data.push_back(std::move(item));
      }
      // Usage counts the text inputs' characters' tokens poorly at best; report inputs.
      const auto n = static_cast<int64_t>(request.inputs.size());
      send_json(res, 200,
                {{"object", "list"},
                 {"data", data},
                 {"model", request.model.empty() ? s.name : request.model},
                 {"usage", {{"prompt_tokens", n}, {"total_tokens", n}}}});
    } catch (const std::exception& e) {
      send_error(res, to_api_error(e, refs));
    }
  });

  http.Post("/v1/search", [&s](const httplib::Request& req, httplib::Response& res) {
    std::vector<ImageRef> refs;
    try {
      if (!s.index) {
        throw ApiError(404, "invalid_request_error", "this server has no index (start it with --index FILE)", "",
                       "no_index");
      }
      const auto request = parse_search_request(parse_body(req.body), s.options.limits);
      const auto named_mode = s.check_model(request.model);
      if (named_mode && *named_mode != s.index->mode()) {
        throw invalid_request("model", std::string("the index holds InternVL-") + (s.index->mode() == EmbedMode::kG ? "G" : "C") +
                                           " embeddings; search it with that mode's model",
                              "invalid_value");
      }
      auto ticket = s.admission.enter();
      if (!ticket) throw unavailable("the server is busy; retry later", "server_busy");
      std::optional<Image> image;
      if (request.query.image) {
        refs.push_back(*request.query.image);
        image = s.resolve_image(*request.query.image);
      }
      if (!ticket->wait()) throw unavailable("the server is shutting down", "shutting_down");
      const auto hits = on_worker(s.workers, [&] {
        return image ? s.model->retrieve(std::vector<Image>{*image}, *s.index, request.k)
                     : s.model->retrieve(std::vector<std::string>{*request.query.text}, *s.index, request.k);
      });
      json data = json::array();
      for (const auto& hit : hits.at(0)) {
        data.push_back({{"object", "search_result"},
                        {"id", hit.id},
                        {"row", hit.row},
                        {"score", hit.score},
                        {"image_url", "/v1/search/image?row=" + std::to_string(hit.row)}});
      }
      send_json(res, 200, {{"object", "list"}, {"data", data}, {"model", s.name}, {"mode", to_string(s.index->mode())}});
    } catch (const std::exception& e) {
      send_error(res, to_api_error(e, refs));
    }
  });

  // The indexed file of one row (thumbnails in the page): only ids the index holds are served.
  http.Get("/v1/search/image", [&s](const httplib::Request& req, httplib::Response& res) {
    try {
      if (!s.index) throw ApiError(404, "invalid_request_error", "this server has no index", "", "no_index");
      const auto text = req.get_param_value("row");
      char* end = nullptr;
      const long long row = std::strtoll(text.c_str(), &end, 10);
      if (text.empty() || *end != '\0' || row < 0 || row >= s.index->size()) {
        throw invalid_request("row", "row must be an index row in [0, " + std::to_string(s.index->size()) + ")",
                              "invalid_value");
      }
      const auto& id = s.index->ids().at(static_cast<size_t>(row));
      auto bytes = read_whole_file(id, s.options.max_body_bytes);
      if (!bytes) throw ApiError(404, "invalid_request_error", "the indexed file '" + id + "' cannot be read", "row", "not_found");
      const auto type = content_type_of(*bytes);
      res.set_content(std::string(bytes->begin(), bytes->end()), type.c_str());
    } catch (const std::exception& e) {
      send_error(res, to_api_error(e, {}));
    }
  });

  // httplib listens with a backlog of 5: a burst of clients overflows it and some connections
  // are reset. Keep the socket to listen again with a real backlog.
  int listen_fd = -1;
  http.set_socket_options([&listen_fd](int fd) {
    int yes = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    listen_fd = fd;
  });
  const int port = o.port == 0 ? http.bind_to_any_port(o.host) : (http.bind_to_port(o.host, o.port) ? o.port : -1);
  if (port < 0) {
    std::cerr << "internvl-server: cannot listen on " << o.host << ":" << o.port << "\n";
    return 1;
  }
  if (listen_fd >= 0) ::listen(listen_fd, 1024);
  if (on_listening) on_listening(port);

  std::thread loader([&s] {
    try {
      auto load = s.options.load;
      // Every slot's request decodes in the same batch (the library's engine).
      load.max_batch_size = std::max(1, s.options.parallel);
      auto model = Model::load(s.options.model_path, load);
      std::optional<Index> index;
      if (!s.options.index_path.empty()) {
        index = Index::load(s.options.index_path);
        if (index->model_id() != model.model_id()) {
          throw InvalidArgument("--index " + s.options.index_path + " was built with another model (" +
                                index->model_id() + ", this one is " + model.model_id() + ")");
        }
      }
      s.model.emplace(std::move(model));
      if (index) s.index.emplace(std::move(*index));
      s.ready = true;
      std::cerr << "internvl-server: loaded " << s.options.model_path << " as '" << s.name << "'\n";
    } catch (const std::exception& e) {
      s.load_error = tool_common::in_user_terms(e.what());
      s.load_failed = true;
      std::cerr << "internvl-server: " << s.load_error << "\n";
      // stop() is a no-op until listen has started: wait for it (bounded) so a fast failure
      // cannot leave the server listening forever.
      for (int i = 0; i < 500 && !s.http.is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      s.http.stop();
    }
  });
  const bool listened = http.listen_after_bind();
  loader.join();
  if (state_->stopper.joinable()) state_->stopper.join();
  if (s.load_failed) return 1;
  return listened || s.stopping ? 0 : 1;
}

}  // namespace internvl::server
