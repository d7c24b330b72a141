// internvl-server's raw protocol and behaviour under bad input and load, on real sockets of
// 127.0.0.1: curl for SSE framing, error codes, auth and the body limit; an in-process client for
// the queue (503 + Retry-After), disconnects, shutdown, image sources (a loopback image server
// for remote URLs: size, time and redirect limits) and a 32-client load run.
#include <internvl/internvl.h>
// clang-format off
#include <gtest/gtest.h>
#include <httplib.h>
// clang-format on

#include <atomic>
#include <chrono>
#include <future>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "api_request.h"
#include "server/server_process.h"
#include "support/fixtures.h"

using internvl::testing::ServerProcess;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

std::string first_chat_fixture() {
  const auto chats = internvl::testing::fixtures_with_architecture("InternVLChatModel");
  return chats.empty() ? std::string() : chats.front();
}

std::string image_file() {
  return internvl::testing::images_dir() + "/" +
         internvl::testing::read_json(internvl::testing::images_dir() + "/images.json").at(0).at("file").get<std::string>();
}

std::string data_url_of(const std::string& bytes) {
  return "data:image/jpeg;base64," +
         internvl::server::encode_base64(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

json chat_body(const std::string& text, int max_tokens, bool stream = false) {
  return {{"messages", json::array({{{"role", "user"}, {"content", text}}})}, {"max_tokens", max_tokens}, {"stream", stream}};
}

json image_chat_body(const std::string& url, int max_tokens) {
  return {{"messages", json::array({{{"role", "user"},
                                      {"content", json::array({{{"type", "image_url"}, {"image_url", {{"url", url}}}},
                                                               {{"type", "text"}, {"text", "What is this?"}}})}}})},
          {"max_tokens", max_tokens}};
}

struct Curl {
  int http_status = 0;
  std::string body;
  std::string headers;
};

// curl with the body on stdin; -w appends the status after a marker.
Curl curl(const ServerProcess& server, const std::string& method, const std::string& path, const std::string& body,
          const std::vector<std::string>& extra = {}) {
  const auto headers_path = internvl::testing::unique_temp_path("curl", "headers.txt");
  std::vector<std::string> args = {"-sS", "-N", "-X", method, "-D", headers_path, "-w", "\n@@STATUS@@%{http_code}",
                                   "-H", "Content-Type: application/json", "--max-time", "120"};
  args.insert(args.end(), extra.begin(), extra.end());
  if (!body.empty()) {
    args.push_back("--data-binary");
    args.push_back("@-");
  }
  args.push_back(server.base_url() + path);
  const auto run = internvl::testing::run_tool("/usr/bin/curl", args, body.empty() ? std::nullopt : std::optional<std::string>(body));
  Curl out;
  const auto marker = run.out.rfind("\n@@STATUS@@");
  if (marker != std::string::npos) {
    out.body = run.out.substr(0, marker);
    out.http_status = std::atoi(run.out.c_str() + marker + 11);
  }
  out.headers = internvl::testing::read_file(headers_path);
  return out;
}

// The error object the OpenAI API defines, naming `param`.
void expect_error(const Curl& got, int status, const std::string& param, const std::string& code = {}) {
  EXPECT_EQ(got.http_status, status) << got.body;
  json body;
  ASSERT_NO_THROW(body = json::parse(got.body)) << got.body;
  ASSERT_TRUE(body.contains("error")) << got.body;
  const auto& e = body.at("error");
  EXPECT_TRUE(e.at("message").is_string() && !e.at("message").get<std::string>().empty()) << got.body;
  EXPECT_TRUE(e.at("type").is_string()) << got.body;
  EXPECT_TRUE(e.contains("param") && e.contains("code")) << got.body;
  if (!param.empty()) EXPECT_EQ(e.at("param"), param) << got.body;
  if (!code.empty()) EXPECT_EQ(e.at("code"), code) << got.body;
}

TEST(ServerTool, UsageAndLoadFailuresExitWithTheirCodes) {
  const auto tool = internvl::testing::server_tool_path();
  const auto missing = internvl::testing::run_tool(tool, {"-m", "/nonexistent/model-folder", "--port", "0"});
  EXPECT_EQ(missing.status, 1) << internvl::testing::describe(missing);
  EXPECT_NE(missing.err.find("/nonexistent/model-folder"), std::string::npos) << missing.err;
  const auto usage = internvl::testing::run_tool(tool, {"--port", "0"});
  EXPECT_EQ(usage.status, 2) << internvl::testing::describe(usage);
  const auto bad_flag = internvl::testing::run_tool(tool, {"-m", "x", "--parallel", "zero"});
  EXPECT_EQ(bad_flag.status, 2);
  EXPECT_NE(bad_flag.err.find("--parallel"), std::string::npos) << bad_flag.err;
  const auto version = internvl::testing::run_tool(tool, {"--version"});
  EXPECT_EQ(version.status, 0);
  EXPECT_EQ(version.out.rfind("internvl-server ", 0), 0u) << version.out;
}

class ServerFixture : public ::testing::Test {
 protected:
  void start(std::vector<std::string> extra = {}) {
    fixture_ = first_chat_fixture();
    if (fixture_.empty()) GTEST_SKIP() << "no InternVLChatModel fixture";
    std::vector<std::string> args = {"--model", internvl::testing::fixture_path(fixture_)};
    args.insert(args.end(), extra.begin(), extra.end());
    std::string why;
    server_ = ServerProcess::start(args, &why);
    ASSERT_TRUE(server_) << why;
  }
  json post(const json& body, int* status = nullptr, const httplib::Headers& headers = {}) {
    auto client = server_->client();
    auto res = client.Post("/v1/chat/completions", headers, body.dump(), "application/json");
    if (!res) {
      ADD_FAILURE() << "no response: " << httplib::to_string(res.error());
      return json();
    }
    if (status) *status = res->status;
    return json::parse(res->body);
  }
  // A request that runs to max_tokens (no end-of-turn token on the way) and takes a while:
  // what the queue, disconnect and shutdown tests keep a slot busy with.
  json long_request(double* seconds) {
    for (int attempt = 0; attempt < 8; ++attempt) {
      for (int tokens = 400; tokens <= 6400; tokens *= 2) {
        auto body = chat_body("Tell me a long story, number " + std::to_string(attempt) + ".", tokens);
        const auto t0 = Clock::now();
        int status = 0;
        const auto answer = post(body, &status);
        const double s = std::chrono::duration<double>(Clock::now() - t0).count();
        if (status != 200) break;
        if (answer.at("choices").at(0).at("finish_reason") != "length") break;
        if (s > 1.5) {
          *seconds = s;
          return body;
        }
      }
    }
    return json();
  }
  int health_running() {
    auto res = server_->client().Get("/health");
    return res && res->status == 200 ? json::parse(res->body).at("running").get<int>() : -1;
  }
  std::string fixture_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(ServerFixture, StreamIsServerSentEventsEndingWithDone) {
  start();
  const auto got = curl(*server_, "POST", "/v1/chat/completions",
                        json{{"messages", json::array({{{"role", "user"}, {"content", "Hello"}}})},
                             {"max_tokens", 8},
                             {"stream", true},
                             {"stream_options", {{"include_usage", true}}}}
                            .dump());
  ASSERT_EQ(got.http_status, 200) << got.body;
  EXPECT_NE(got.headers.find("text/event-stream"), std::string::npos) << got.headers;
  // Every event is one "data: " line followed by a blank line; the last one is [DONE].
  std::vector<std::string> events;
  size_t pos = 0;
  while (pos < got.body.size()) {
    const auto end = got.body.find("\n\n", pos);
    ASSERT_NE(end, std::string::npos) << "unterminated event at " << pos << ": " << got.body.substr(pos);
    events.push_back(got.body.substr(pos, end - pos));
    pos = end + 2;
  }
  ASSERT_GE(events.size(), 4u);
  EXPECT_EQ(events.back(), "data: [DONE]");
  std::string text;
  int finish_events = 0;
  bool usage_seen = false;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    ASSERT_EQ(events[i].rfind("data: ", 0), 0u) << events[i];
    ASSERT_EQ(events[i].find('\n'), std::string::npos) << events[i];
    const auto chunk = json::parse(events[i].substr(6));
    EXPECT_EQ(chunk.at("object"), "chat.completion.chunk");
    EXPECT_EQ(chunk.at("id"), json::parse(events[0].substr(6)).at("id"));
    if (chunk.at("choices").empty()) {
      usage_seen = true;
      EXPECT_EQ(i + 2, events.size()) << "usage is the last chunk before [DONE]";
      EXPECT_EQ(chunk.at("usage").at("completion_tokens"), 8);
      continue;
    }
    const auto& choice = chunk.at("choices").at(0);
    if (i == 0) EXPECT_EQ(choice.at("delta").at("role"), "assistant");
    if (choice.at("delta").contains("content")) text += choice.at("delta").at("content").get<std::string>();
    if (!choice.at("finish_reason").is_null()) {
      ++finish_events;
      EXPECT_EQ(choice.at("finish_reason"), "length");
    }
  }
  EXPECT_EQ(finish_events, 1);
  EXPECT_TRUE(usage_seen);
  // The stream says what the unary answer says.
  const auto unary = curl(*server_, "POST", "/v1/chat/completions", chat_body("Hello", 8).dump());
  ASSERT_EQ(unary.http_status, 200) << unary.body;
  EXPECT_EQ(text, json::parse(unary.body).at("choices").at(0).at("message").at("content").get<std::string>());
}

TEST_F(ServerFixture, BadRequestsGetTheErrorObjectAndTheServerKeepsServing) {
  start({"--max-images", "1", "--max-body-bytes", "200000"});
  const std::string path = "/v1/chat/completions";
  expect_error(curl(*server_, "POST", path, "{\"messages\": ["), 400, "body", "invalid_json");
  expect_error(curl(*server_, "POST", path, "[1, 2]"), 400, "body");
  expect_error(curl(*server_, "POST", path, R"({"messages": "hi"})"), 400, "messages", "invalid_type");
  expect_error(curl(*server_, "POST", path, R"({"messages": []})"), 400, "messages");
  expect_error(curl(*server_, "POST", path, R"({"messages": [{"role": "user", "content": "hi"}], "max_tokens": "8"})"),
               400, "max_tokens", "invalid_type");
  expect_error(curl(*server_, "POST", path, R"({"messages": [{"role": "user", "content": [{"type": "video"}]}]})"),
               400, "messages[0].content[0].type");
  expect_error(curl(*server_, "POST", path, R"({"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}]})"),
               404, "model", "model_not_found");
  expect_error(curl(*server_, "POST", path, image_chat_body("data:image/png;base64,aGVsbG8gd29ybGQ=", 4).dump()), 400,
               "messages[0].content[0].image_url", "invalid_image");
  expect_error(curl(*server_, "POST", path, image_chat_body("data:image/png;base64,***", 4).dump()), 400,
               "messages[0].content[0].image_url");
  // Beyond the model's context.
  expect_error(curl(*server_, "POST", path, chat_body("hi", 1 << 29).dump()), 400, "messages", "context_length_exceeded");
  // Two images with --max-images 1.
  const auto small = data_url_of(internvl::testing::read_file(image_file()).substr(0, 10));
  auto two = image_chat_body(small, 4);
  two["messages"][0]["content"].insert(two["messages"][0]["content"].begin(),
                                       json{{"type", "image_url"}, {"image_url", {{"url", small}}}});
  expect_error(curl(*server_, "POST", path, two.dump()), 400, "messages", "too_many_images");
  // Over --max-body-bytes.
  expect_error(curl(*server_, "POST", path, chat_body(std::string(300000, 'x'), 4).dump()), 413, "body", "body_too_large");
  expect_error(curl(*server_, "POST", "/v1/embeddings", R"({"input": "hi"})"), 400, "model", "unsupported");
  expect_error(curl(*server_, "GET", "/v1/nothing-here", ""), 404, "");
  // Still serving.
  const auto ok = curl(*server_, "POST", path, chat_body("hi", 4).dump());
  EXPECT_EQ(ok.http_status, 200) << ok.body;
  EXPECT_EQ(json::parse(ok.body).at("usage").at("completion_tokens"), 4);
  const auto models = curl(*server_, "GET", "/v1/models", "");
  EXPECT_EQ(models.http_status, 200);
  const auto name = json::parse(models.body).at("data").at(0).at("id").get<std::string>();
  EXPECT_EQ(json::parse(models.body).at("data").at(0).at("object"), "model");
  const auto one = curl(*server_, "GET", "/v1/models/" + name, "");
  EXPECT_EQ(one.http_status, 200) << one.body;
  EXPECT_EQ(json::parse(one.body).at("id"), name);
  expect_error(curl(*server_, "GET", "/v1/models/" + name + "-nope", ""), 404, "model", "model_not_found");
  EXPECT_EQ(server_->stop(), 0) << server_->stderr_text();
}

TEST_F(ServerFixture, ApiKeyIsRequiredOnTheApiButNotOnHealth) {
  start({"--api-key", "s3cret"});
  const std::string path = "/v1/chat/completions";
  expect_error(curl(*server_, "POST", path, chat_body("hi", 2).dump()), 401, "", "invalid_api_key");
  expect_error(curl(*server_, "POST", path, chat_body("hi", 2).dump(), {"-H", "Authorization: Bearer wrong"}), 401, "",
               "invalid_api_key");
  expect_error(curl(*server_, "GET", "/v1/models", ""), 401, "");
  EXPECT_EQ(curl(*server_, "POST", path, chat_body("hi", 2).dump(), {"-H", "Authorization: Bearer s3cret"}).http_status, 200);
  EXPECT_EQ(curl(*server_, "GET", "/health", "").http_status, 200);
  EXPECT_EQ(curl(*server_, "GET", "/", "").http_status, 200);
}

TEST_F(ServerFixture, RequestsBeyondTheQueueGet503WithRetryAfter) {
  start({"--parallel", "1", "--max-queue", "1"});
  double seconds = 0;
  const auto body = long_request(&seconds);
  ASSERT_FALSE(body.is_null()) << "no request of this fixture runs long enough";
  auto running = std::async(std::launch::async, [&] { return post(body); });
  for (int i = 0; i < 4000 && health_running() < 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(health_running(), 1);
  auto queued = std::async(std::launch::async, [&] {
    int status = 0;
    auto answer = post(chat_body("queued", 3), &status);
    return std::make_pair(status, answer);
  });
  // Wait until the second one is in the queue, then a third is refused.
  for (int i = 0; i < 2000; ++i) {
    auto res = server_->client().Get("/health");
    if (res && json::parse(res->body).at("waiting").get<int>() == 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  auto client = server_->client();
  auto refused = client.Post("/v1/chat/completions", chat_body("third", 3).dump(), "application/json");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 503);
  EXPECT_EQ(refused->get_header_value("Retry-After"), "1");
  EXPECT_EQ(json::parse(refused->body).at("error").at("code"), "server_busy");
  EXPECT_EQ(running.get().at("choices").at(0).at("finish_reason"), "length");
  const auto [status, answer] = queued.get();
  EXPECT_EQ(status, 200);
  EXPECT_EQ(answer.at("usage").at("completion_tokens"), 3);
}

TEST_F(ServerFixture, DisconnectMidStreamFreesTheSlotAtOnce) {
  start({"--parallel", "1"});
  double seconds = 0;
  auto body = long_request(&seconds);
  ASSERT_FALSE(body.is_null()) << "no request of this fixture runs long enough";
  body["stream"] = true;
  std::atomic<int> chunks{0};
  {
    auto client = server_->client();
    // Reading three chunks and then refusing more closes the connection.
    internvl::testing::post_streaming(client, "/v1/chat/completions", body.dump(),
                                      [&](const char*, size_t) { return ++chunks < 3; });
  }
  EXPECT_GE(chunks.load(), 3);
  const auto t0 = Clock::now();
  while (health_running() != 0 && Clock::now() - t0 < std::chrono::seconds(30)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const double freed = std::chrono::duration<double>(Clock::now() - t0).count();
  EXPECT_EQ(health_running(), 0);
  // The whole generation takes `seconds`; the slot is back long before that.
  EXPECT_LT(freed, seconds / 2) << "generation alone takes " << seconds << " s";
  int status = 0;
  post(chat_body("next", 2), &status);
  EXPECT_EQ(status, 200);
}

TEST_F(ServerFixture, SigtermCancelsInFlightRequestsAndExitsZero) {
  start({"--shutdown-grace-ms", "200"});
  double seconds = 0;
  auto body = long_request(&seconds);
  ASSERT_FALSE(body.is_null());
  body["stream"] = true;
  std::atomic<int> chunks{0};
  auto streaming = std::async(std::launch::async, [&] {
    auto client = server_->client();
    std::string all;
    internvl::testing::post_streaming(client, "/v1/chat/completions", body.dump(), [&](const char* d, size_t n) {
      all.append(d, n);
      ++chunks;
      return true;
    });
    return all;
  });
  for (int i = 0; i < 4000 && chunks < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_GE(chunks.load(), 2);
  const auto t0 = Clock::now();
  EXPECT_EQ(server_->stop(SIGTERM, 30), 0) << server_->stderr_text();
  const double took = std::chrono::duration<double>(Clock::now() - t0).count();
  EXPECT_LT(took, 0.2 + seconds / 2) << "a full generation takes " << seconds << " s";
  const auto all = streaming.get();
  // Cancelled streams still end properly: a finish_reason and [DONE].
  EXPECT_NE(all.find("\"finish_reason\":\"length\""), std::string::npos);
  EXPECT_NE(all.find("data: [DONE]"), std::string::npos);
}

// A loopback image server: /image, /redirect/N (N hops to /image), /big (over the limit),
// /slow (longer than the timeout).
class ImageHost {
 public:
  explicit ImageHost(std::string image) : image_(std::move(image)) {
    http_.Get("/image", [this](const httplib::Request&, httplib::Response& res) { res.set_content(image_, "image/jpeg"); });
    http_.Get(R"(/redirect/(\d+))", [](const httplib::Request& req, httplib::Response& res) {
      const int n = std::stoi(req.matches[1]);
      res.set_redirect(n <= 1 ? "/image" : "/redirect/" + std::to_string(n - 1));
    });
    http_.Get("/big", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(std::string(3 << 20, '\xFF'), "image/jpeg");
    });
    http_.Get("/slow", [this](const httplib::Request&, httplib::Response& res) {
      for (int i = 0; i < 60 && !stopping_; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      res.set_content(image_, "image/jpeg");
    });
    port_ = http_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { http_.listen_after_bind(); });
  }
  ~ImageHost() {
    stopping_ = true;
    http_.stop();
    thread_.join();
  }
  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port_) + path; }

 private:
  std::string image_;
  httplib::Server http_;
  std::atomic<bool> stopping_{false};
  int port_ = 0;
  std::thread thread_;
};

TEST_F(ServerFixture, RemoteAndLocalImagesOnlyWhenAllowedAndWithinLimits) {
  const auto image = internvl::testing::read_file(image_file());
  ImageHost host(image);
  const auto root = internvl::testing::images_dir();
  start({"--allow-remote-images", "--remote-image-max-bytes", std::to_string(2 << 20), "--remote-image-timeout", "2",
         "--remote-image-max-redirects", "2", "--allow-file-root", root});
  const auto reference = post(image_chat_body(data_url_of(image), 4));
  ASSERT_TRUE(reference.contains("choices")) << reference.dump();
  const auto answer = reference.at("choices").at(0).at("message").at("content");
  for (const auto& url : {host.url("/image"), host.url("/redirect/2"), image_file(), "file://" + image_file()}) {
    SCOPED_TRACE(url);
    int status = 0;
    const auto got = post(image_chat_body(url, 4), &status);
    EXPECT_EQ(status, 200) << got.dump();
    if (status == 200) EXPECT_EQ(got.at("choices").at(0).at("message").at("content"), answer);
  }
  const std::string param = "messages[0].content[0].image_url";
  for (const auto& [url, code] : std::vector<std::pair<std::string, std::string>>{
           {host.url("/redirect/3"), "too_many_redirects"},
           {host.url("/big"), "image_too_large"},
           {host.url("/slow"), "image_fetch_timeout"},
           {root + "/../README.md", "image_not_found"},
           {"/etc/passwd", "image_not_found"}}) {
    SCOPED_TRACE(url);
    int status = 0;
    const auto got = post(image_chat_body(url, 4), &status);
    EXPECT_EQ(status, 400);
    EXPECT_EQ(got.at("error").at("param"), param) << got.dump();
    EXPECT_EQ(got.at("error").at("code"), code) << got.dump();
  }
  server_.reset();
  start();  // defaults: neither remote nor local images
  for (const auto& [url, code] : std::vector<std::pair<std::string, std::string>>{
           {host.url("/image"), "remote_images_disabled"}, {image_file(), "local_images_disabled"}}) {
    int status = 0;
    const auto got = post(image_chat_body(url, 4), &status);
    EXPECT_EQ(status, 400);
    EXPECT_EQ(got.at("error").at("code"), code) << got.dump();
  }
}

TEST_F(ServerFixture, ThirtyTwoConcurrentClientsGetCompleteCorrectAnswers) {
  start({"--parallel", "4", "--max-queue", "64"});
  const int clients = 32;
  auto body_for = [](int i) { return chat_body("Question number " + std::to_string(i % 8), 12, i % 2 == 1); };
  // Alone first: what each greedy answer must be.
  std::vector<std::string> alone(8);
  for (int i = 0; i < 8; ++i) alone[i] = post(body_for(2 * i)).at("choices").at(0).at("message").at("content");
  const long rss_before = server_->rss_kib();
  auto run_all = [&] {
    std::vector<std::future<std::string>> futures;
    for (int i = 0; i < clients; ++i) {
      futures.push_back(std::async(std::launch::async, [&, i] {
        auto client = server_->client(60);
        const auto body = body_for(i);
        if (!body.at("stream").get<bool>()) {
          auto res = client.Post("/v1/chat/completions", body.dump(), "application/json");
          if (!res) return "<failed: " + httplib::to_string(res.error()) + ">";
          if (res->status != 200) return "<failed: HTTP " + std::to_string(res->status) + " " + res->body + ">";
          return json::parse(res->body).at("choices").at(0).at("message").at("content").get<std::string>();
        }
        std::string raw;
        auto res = internvl::testing::post_streaming(client, "/v1/chat/completions", body.dump(),
                               [&](const char* d, size_t n) {
                                 raw.append(d, n);
                                 return true;
                               });
        if (!res) return "<failed: " + httplib::to_string(res.error()) + ">";
        if (raw.find("data: [DONE]") == std::string::npos) return "<incomplete: " + raw.substr(0, 300) + ">";
        std::string text;
        for (size_t pos = 0; (pos = raw.find("data: {", pos)) != std::string::npos; ++pos) {
          const auto chunk = json::parse(raw.substr(pos + 6, raw.find("\n\n", pos) - pos - 6));
          if (!chunk.at("choices").empty() && chunk["choices"][0]["delta"].contains("content")) {
            text += chunk["choices"][0]["delta"]["content"].get<std::string>();
          }
        }
        return text;
      }));
    }
    std::vector<std::string> answers;
    for (auto& f : futures) answers.push_back(f.get());
    return answers;
  };
  const auto t0 = Clock::now();
  for (int round = 0; round < 3; ++round) {
    const auto answers = run_all();
    for (int i = 0; i < clients; ++i) EXPECT_EQ(answers[i], alone[i % 8]) << "client " << i << " round " << round;
  }
  EXPECT_LT(Clock::now() - t0, std::chrono::minutes(5));
  // A stream's slot is released just after its client has read [DONE]: allow for that race.
  for (int i = 0; i < 1000 && health_running() != 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(health_running(), 0);
  // Memory returns near where it was (allocator caches allowed: 64 MiB).
  const long rss_after = server_->rss_kib();
  EXPECT_LT(rss_after, rss_before + 64 * 1024) << "before " << rss_before << " KiB, after " << rss_after << " KiB";
  EXPECT_EQ(server_->stop(), 0);
}

}  // namespace
