// The server's request parser and stream filter (examples/server/api_request.h, stream_text.h):
// pure functions, so every property is checked here without a model or a socket.
#include "api_request.h"

#include <gtest/gtest.h>

#include <functional>
#include <random>
#include <string>
#include <vector>

#include "stream_text.h"
#include "tokenizer/text_util.h"

namespace {

using internvl::EmbedMode;
using nlohmann::json;
namespace server = internvl::server;

// The error fn() throws; a failure (and an empty error) when it throws none or another type.
server::ApiError error_of(const std::function<void()>& fn) {
  try {
    fn();
    ADD_FAILURE() << "expected an ApiError";
  } catch (const server::ApiError& e) {
    return e;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected an ApiError, got: " << e.what();
  }
  return server::ApiError(0, "", "");
}

// A 400 invalid_request_error naming `param` (and `code`, when given).
void expect_refused(const std::function<void()>& fn, const std::string& param, const std::string& code = {}) {
  const auto e = error_of(fn);
  EXPECT_EQ(e.status, 400) << e.what();
  EXPECT_EQ(e.type, "invalid_request_error") << e.what();
  EXPECT_EQ(e.param, param) << e.what();
  if (!code.empty()) {
    EXPECT_EQ(e.code, code) << param << ": " << e.what();
  }
}

json user(json content) { return {{"role", "user"}, {"content", std::move(content)}}; }
json assistant(json content) { return {{"role", "assistant"}, {"content", std::move(content)}}; }
json system_message(json content) { return {{"role", "system"}, {"content", std::move(content)}}; }
json text_part(const std::string& text) { return {{"type", "text"}, {"text", text}}; }
json image_part(const std::string& url) { return {{"type", "image_url"}, {"image_url", {{"url", url}}}}; }

// A valid chat body with `extra` fields merged in.
json chat_body(const json& extra = json::object()) {
  json body = {{"model", "internvl"}, {"messages", json::array({user("hi")})}};
  body.update(extra);
  return body;
}

server::ChatCompletionRequest chat(const json& body, const server::RequestLimits& limits = {}) {
  return server::parse_chat_request(body, limits);
}

// ---- body ----------------------------------------------------------------------------------------

TEST(ApiRequestBody, InvalidJsonOrNotAnObjectNamesTheBody) {
  for (const char* text : {"", "{", "[]", "\"x\"", "3", "null", "{\"a\":}", "{\"a\":1}x"}) {
    SCOPED_TRACE(text);
    expect_refused([&] { (void)server::parse_body(text); }, "body", "invalid_json");
  }
  EXPECT_TRUE(server::parse_body(" {\"a\": [1]} ").is_object());
  expect_refused([] { (void)server::parse_chat_request(json::array()); }, "body");
  expect_refused([] { (void)server::parse_embedding_request(json(3)); }, "body");
  expect_refused([] { (void)server::parse_search_request(json("q")); }, "body");
}

TEST(ApiRequestBody, InvalidUtf8BodyGivesAnErrorBodyThatSerialises) {
  // nlohmann's message quotes the offending bytes; the error body must still dump (strictly).
  for (const std::string text : {"{\"a\": \"\xff\"}", "{\"query\": {\"type\": \"\x8c\x9a\x87text\": 1}}", "\xc3", "{\xe3\x80}"}) {
    const auto e = error_of([&] { (void)server::parse_body(text); });
    EXPECT_EQ(e.param, "body");
    EXPECT_NO_THROW((void)server::error_body(e).dump()) << e.what();
  }
}

TEST(ApiRequestBody, ErrorBodyHasTheOpenAIShape) {
  const auto body = server::error_body(server::invalid_request("stop[1]", "bad", "invalid_value"));
  EXPECT_EQ(body["error"]["message"], "bad");
  EXPECT_EQ(body["error"]["type"], "invalid_request_error");
  EXPECT_EQ(body["error"]["param"], "stop[1]");
  EXPECT_EQ(body["error"]["code"], "invalid_value");
  const auto bare = server::error_body(server::ApiError(500, "server_error", "x"));
  EXPECT_TRUE(bare["error"]["param"].is_null());
  EXPECT_TRUE(bare["error"]["code"].is_null());
  // An ApiError is an internvl::Error (what the server's generic handlers catch).
  EXPECT_THROW(throw server::invalid_request("p", "m"), internvl::Error);
}

// ---- chat: refusals name the field ---------------------------------------------------------------

struct Refusal {
  json body;
  std::string param;
  std::string code;
};

TEST(ApiRequestChat, EveryBadFieldNamesItsParam) {
  const json ok_user = user("hi");
  const std::vector<Refusal> cases = {
      {json::object(), "messages", "missing_field"},
      {{{"messages", nullptr}}, "messages", "missing_field"},
      {{{"messages", "hi"}}, "messages", "invalid_type"},
      {{{"messages", json::array()}}, "messages", "invalid_value"},
      {{{"messages", {1}}}, "messages[0]", "invalid_type"},
      {{{"messages", {ok_user, "x"}}}, "messages[1]", "invalid_type"},
      {{{"messages", {{{"content", "hi"}}}}}, "messages[0].role", "missing_field"},
      {{{"messages", {{{"role", 3}, {"content", "hi"}}}}}, "messages[0].role", "invalid_type"},
      {{{"messages", {{{"role", "tool"}, {"content", "hi"}}}}}, "messages[0].role", "invalid_value"},
      {{{"messages", {{{"role", "user"}}}}}, "messages[0].content", "missing_field"},
      {{{"messages", {{{"role", "user"}, {"content", nullptr}}}}}, "messages[0].content", "missing_field"},
      {{{"messages", {user(5)}}}, "messages[0].content", "invalid_type"},
      {{{"messages", {user({5})}}}, "messages[0].content[0]", "invalid_type"},
      {{{"messages", {user({{{"text", "a"}}})}}}, "messages[0].content[0].type", "missing_field"},
      {{{"messages", {user({{{"type", 7}}})}}}, "messages[0].content[0].type", "invalid_type"},
      {{{"messages", {ok_user, user({{{"type", "audio"}}})}}}, "messages[1].content[0].type", "invalid_value"},
      {{{"messages", {user({text_part("a"), {{"type", "text"}}})}}}, "messages[0].content[1].text", "missing_field"},
      {{{"messages", {user({{{"type", "text"}, {"text", 1}}})}}}, "messages[0].content[0].text", "invalid_type"},
      {{{"messages", {user({text_part("a"), {{"type", "image_url"}}})}}}, "messages[0].content[1].image_url",
       "missing_field"},
      {{{"messages", {user({{{"type", "image_url"}, {"image_url", 5}}})}}}, "messages[0].content[0].image_url",
       "invalid_type"},
      {{{"messages", {user({{{"type", "image_url"}, {"image_url", ""}}})}}}, "messages[0].content[0].image_url",
       "invalid_value"},
      {{{"messages", {user({{{"type", "image_url"}, {"image_url", json::object()}}})}}},
       "messages[0].content[0].image_url.url", "missing_field"},
      {{{"messages", {user({{{"type", "image_url"}, {"image_url", {{"url", 5}}}}})}}},
       "messages[0].content[0].image_url.url", "invalid_type"},
      {{{"messages", {user({image_part("")})}}}, "messages[0].content[0].image_url.url", "invalid_value"},
      // Images only in user messages.
      {{{"messages", {ok_user, assistant({image_part("data:,x")}), ok_user}}}, "messages[1].content[0]",
       "invalid_value"},
      {{{"messages", {system_message({image_part("data:,x")}), ok_user}}}, "messages[0].content[0]",
       "invalid_value"},
      {chat_body({{"model", 5}}), "model", "invalid_type"},
      {chat_body({{"max_tokens", 0}}), "max_tokens", "invalid_value"},
      {chat_body({{"max_tokens", -1}}), "max_tokens", "invalid_value"},
      {chat_body({{"max_tokens", "10"}}), "max_tokens", "invalid_type"},
      {chat_body({{"max_tokens", 2.5}}), "max_tokens", "invalid_type"},
      {chat_body({{"max_tokens", 1e300}}), "max_tokens", "invalid_type"},
      {chat_body({{"max_tokens", json(uint64_t{18446744073709551615ull})}}), "max_tokens", "invalid_value"},
      {chat_body({{"max_tokens", int64_t{1} << 40}}), "max_tokens", "invalid_value"},
      {chat_body({{"max_completion_tokens", 0}}), "max_completion_tokens", "invalid_value"},
      {chat_body({{"max_completion_tokens", true}}), "max_completion_tokens", "invalid_type"},
      {chat_body({{"temperature", "1"}}), "temperature", "invalid_type"},
      {chat_body({{"temperature", -0.1}}), "temperature", "invalid_value"},
      {chat_body({{"temperature", 2.5}}), "temperature", "invalid_value"},
      {chat_body({{"top_p", 0}}), "top_p", "invalid_value"},
      {chat_body({{"top_p", 1.5}}), "top_p", "invalid_value"},
      {chat_body({{"top_p", -1}}), "top_p", "invalid_value"},
      {chat_body({{"top_p", json::array()}}), "top_p", "invalid_type"},
      {chat_body({{"top_k", -1}}), "top_k", "invalid_value"},
      {chat_body({{"top_k", 1.5}}), "top_k", "invalid_type"},
      {chat_body({{"repetition_penalty", 0}}), "repetition_penalty", "invalid_value"},
      {chat_body({{"repetition_penalty", -2}}), "repetition_penalty", "invalid_value"},
      {chat_body({{"seed", "1"}}), "seed", "invalid_type"},
      {chat_body({{"seed", 1.5}}), "seed", "invalid_type"},
      {chat_body({{"stop", 5}}), "stop", "invalid_type"},
      {chat_body({{"stop", {{{"a", 1}}}}}), "stop[0]", "invalid_type"},
      {chat_body({{"stop", {"a", 2}}}), "stop[1]", "invalid_type"},
      {chat_body({{"stop", {"a", ""}}}), "stop[1]", "invalid_value"},
      {chat_body({{"stop", ""}}), "stop", "invalid_value"},
      {chat_body({{"max_tiles", 0}}), "max_tiles", "invalid_value"},
      {chat_body({{"max_tiles", 65}}), "max_tiles", "invalid_value"},
      {chat_body({{"n", 2}}), "n", "unsupported_value"},
      {chat_body({{"n", 0}}), "n", "unsupported_value"},
      {chat_body({{"n", "1"}}), "n", "invalid_type"},
      {chat_body({{"logprobs", true}}), "logprobs", "unsupported_value"},
      {chat_body({{"logprobs", "yes"}}), "logprobs", "invalid_type"},
      {chat_body({{"tools", json::object()}}), "tools", "invalid_type"},
      {chat_body({{"tools", {json::object()}}}), "tools", "unsupported_value"},
      {chat_body({{"stream", "yes"}}), "stream", "invalid_type"},
      {chat_body({{"stream_options", 1}}), "stream_options", "invalid_type"},
      {chat_body({{"stream_options", {{"include_usage", 1}}}}), "stream_options.include_usage", "invalid_type"},
      {chat_body({{"return_token_ids", 1}}), "return_token_ids", "invalid_type"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.body.dump());
    expect_refused([&] { (void)chat(c.body); }, c.param, c.code);
  }
}

TEST(ApiRequestChat, IntegersFrom2To63AreOutOfRangeNotNegative) {
  for (const uint64_t big : {uint64_t{1} << 63, ~uint64_t{0}}) {
    for (const char* name : {"max_tokens", "top_k", "n", "max_tiles"}) {
      const auto e = error_of([&] { (void)chat(chat_body({{name, big}})); });
      EXPECT_EQ(e.param, name);
      EXPECT_EQ(e.code, "invalid_value") << e.what();
      EXPECT_EQ(std::string(e.what()).find("-"), std::string::npos) << e.what();  // no wrapped value
    }
    // A seed takes any 64-bit value.
    EXPECT_EQ(chat(chat_body({{"seed", big}})).chat.generation.seed, big);
  }
  EXPECT_EQ(chat(chat_body({{"seed", -1}})).chat.generation.seed, ~uint64_t{0});
  expect_refused([] { (void)server::parse_search_request({{"query", "q"}, {"k", ~uint64_t{0}}}); }, "k",
                 "invalid_value");
}

TEST(ApiRequestChat, TooManyStopStringsNamesStop) {
  server::RequestLimits limits;
  limits.max_stop_strings = 3;
  EXPECT_EQ(chat(chat_body({{"stop", {"a", "b", "c"}}}), limits).chat.generation.stop_strings.size(), 3u);
  expect_refused([&] { (void)chat(chat_body({{"stop", {"a", "b", "c", "d"}}}), limits); }, "stop", "invalid_value");
}

// ---- chat: messages → system message, history, question -------------------------------------------

TEST(ApiRequestChat, SystemAndDeveloperMessagesAreConcatenatedInOrder) {
  const auto r = chat({{"messages",
                        {system_message("be brief"), user("q1"), assistant("a1"),
                         {{"role", "developer"}, {"content", {text_part("use"), text_part("English")}}}, user("q2")}}});
  EXPECT_EQ(r.chat.system_message, "be brief\nuse\nEnglish");
  ASSERT_EQ(r.chat.history.size(), 1u);
  EXPECT_EQ(r.chat.history[0].question, "q1");
  EXPECT_EQ(r.chat.history[0].answer, "a1");
  EXPECT_EQ(r.chat.question, "q2");
  EXPECT_EQ(chat(chat_body()).chat.system_message, "");  // none: the template's default
}

TEST(ApiRequestChat, TurnsPairIntoHistoryAndTheLastUserMessageIsTheQuestion) {
  // For n earlier exchanges, history has n pairs in order and the question is the last message.
  for (int n = 0; n < 5; ++n) {
    json messages = json::array();
    for (int i = 0; i < n; ++i) {
      messages.push_back(user("q" + std::to_string(i)));
      messages.push_back(assistant("a" + std::to_string(i)));
    }
    messages.push_back(user("last"));
    const auto r = chat({{"messages", messages}});
    ASSERT_EQ(r.chat.history.size(), static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      EXPECT_EQ(r.chat.history[i].question, "q" + std::to_string(i));
      EXPECT_EQ(r.chat.history[i].answer, "a" + std::to_string(i));
    }
    EXPECT_EQ(r.chat.question, "last");
    EXPECT_TRUE(r.images.empty());
  }
}

TEST(ApiRequestChat, ConsecutiveSameRoleMessagesAreMerged) {
  const auto r = chat({{"messages", {user("a"), user("b"), assistant("x"), assistant("y"), user("c"), user("d")}}});
  ASSERT_EQ(r.chat.history.size(), 1u);
  EXPECT_EQ(r.chat.history[0].question, "a\nb");
  EXPECT_EQ(r.chat.history[0].answer, "x\ny");
  EXPECT_EQ(r.chat.question, "c\nd");
  // Text parts of one message join the same way.
  EXPECT_EQ(chat({{"messages", {user({text_part("p"), text_part("q")})}}}).chat.question, "p\nq");
}

TEST(ApiRequestChat, ConversationMustStartAndEndWithTheUser) {
  expect_refused([] { (void)chat({{"messages", {assistant("hello"), user("hi")}}}); }, "messages[0].role",
                 "invalid_value");
  expect_refused([] { (void)chat({{"messages", {system_message("s"), assistant("hello"), user("hi")}}}); },
                 "messages[1].role", "invalid_value");
  expect_refused([] { (void)chat({{"messages", {user("hi"), assistant("hello")}}}); }, "messages", "invalid_value");
  expect_refused([] { (void)chat({{"messages", {system_message("s")}}}); }, "messages", "invalid_value");
  expect_refused([] { (void)chat({{"messages", {user("q"), assistant("a"), user("")}}}); }, "messages[2].content",
                 "invalid_value");
  expect_refused([] { (void)chat({{"messages", {user(json::array())}}}); }, "messages[0].content", "invalid_value");
}

TEST(ApiRequestChat, NullFieldsCountAsAbsent) {
  const auto defaults = chat(chat_body());
  const auto nulls = chat(chat_body({{"model", nullptr}, {"max_tokens", nullptr}, {"temperature", nullptr},
                                     {"stop", nullptr}, {"seed", nullptr}, {"stream", nullptr}, {"n", nullptr}}));
  EXPECT_EQ(nulls.model, "");
  EXPECT_EQ(nulls.chat.generation.max_new_tokens, defaults.chat.generation.max_new_tokens);
  EXPECT_EQ(nulls.chat.generation.do_sample, defaults.chat.generation.do_sample);
  EXPECT_FALSE(nulls.seed_given);
  EXPECT_FALSE(nulls.stream);
  EXPECT_EQ(defaults.model, "internvl");
}

// ---- chat: images ----------------------------------------------------------------------------------

// The official multi-image prompt prefix for n images ("<image>\n" for one).
std::string image_prefix(size_t n) {
  if (n == 1) return "<image>\n";
  std::string prefix;
  for (size_t i = 0; i < n; ++i) prefix += "Image-" + std::to_string(i + 1) + ": <image>\n";
  return prefix;
}

json user_with_images(const std::string& text, size_t n, const std::string& tag) {
  json parts = json::array();
  for (size_t i = 0; i < n; ++i) parts.push_back(image_part("data:image/png;base64," + tag + std::to_string(i)));
  parts.push_back(text_part(text));
  return user(parts);
}

TEST(ApiRequestChat, ImagesBecomeTheOfficialPlaceholders) {
  for (size_t n = 0; n <= 5; ++n) {
    SCOPED_TRACE(n);
    const auto r = chat({{"messages", {user_with_images("describe", n, "x")}}});
    EXPECT_EQ(r.chat.question, (n ? image_prefix(n) : "") + "describe");
    ASSERT_EQ(r.images.size(), n);
    for (size_t i = 0; i < n; ++i) {
      EXPECT_EQ(r.images[i].url, "data:image/png;base64,x" + std::to_string(i));
      EXPECT_EQ(r.images[i].param, "messages[0].content[" + std::to_string(i) + "].image_url");
    }
    EXPECT_TRUE(r.chat.images.empty());  // the server resolves the refs
  }
  // An image alone: the question is just its placeholder.
  EXPECT_EQ(chat({{"messages", {user({image_part("data:,a")})}}}).chat.question, "<image>\n");
  // The bare-string image_url some clients send.
  const auto bare = chat({{"messages", {user({{{"type", "image_url"}, {"image_url", "file.png"}}})}}});
  ASSERT_EQ(bare.images.size(), 1u);
  EXPECT_EQ(bare.images[0].url, "file.png");
}

TEST(ApiRequestChat, TextHoldingOnePlaceholderPerImageIsKept) {
  for (size_t n = 1; n <= 4; ++n) {
    std::string text;
    for (size_t i = 0; i < n; ++i) text += "look <image> here ";
    const auto r = chat({{"messages", {user_with_images(text, n, "y")}}});
    EXPECT_EQ(r.chat.question, text);
    EXPECT_EQ(r.images.size(), n);
  }
}

TEST(ApiRequestChat, MismatchedPlaceholderCountIsRefused) {
  // k placeholders for n images, 0 < k != n (k = 0 is the automatic prefix).
  for (size_t n = 0; n <= 3; ++n) {
    for (size_t k = 1; k <= 4; ++k) {
      if (k == n) continue;
      std::string text;
      for (size_t i = 0; i < k; ++i) text += "<image>";
      SCOPED_TRACE(std::to_string(n) + " images, " + std::to_string(k) + " placeholders");
      expect_refused([&] { (void)chat({{"messages", {user("q"), assistant("a"), user_with_images(text, n, "z")}}}); },
                     "messages[2].content", "invalid_value");
    }
  }
}

TEST(ApiRequestChat, ImagesAcrossTurnsKeepTheirOrder) {
  const auto r = chat({{"messages",
                        {user_with_images("first", 2, "a"), assistant("ok"), user("no image"), assistant("fine"),
                         user_with_images("third", 1, "c")}}});
  ASSERT_EQ(r.chat.history.size(), 2u);
  EXPECT_EQ(r.chat.history[0].question, image_prefix(2) + "first");
  EXPECT_EQ(r.chat.history[1].question, "no image");
  EXPECT_EQ(r.chat.question, image_prefix(1) + "third");
  std::vector<std::string> urls, params;
  for (const auto& image : r.images) urls.push_back(image.url), params.push_back(image.param);
  const std::vector<std::string> want_urls = {"data:image/png;base64,a0", "data:image/png;base64,a1",
                                              "data:image/png;base64,c0"};
  const std::vector<std::string> want_params = {"messages[0].content[0].image_url", "messages[0].content[1].image_url",
                                                "messages[4].content[0].image_url"};
  EXPECT_EQ(urls, want_urls);
  EXPECT_EQ(params, want_params);
  // Merged user messages pool their images: one prompt prefix for both.
  const auto merged = chat({{"messages", {user_with_images("a", 1, "m"), user_with_images("b", 1, "n")}}});
  EXPECT_EQ(merged.chat.question, image_prefix(2) + "a\nb");
  ASSERT_EQ(merged.images.size(), 2u);
  EXPECT_EQ(merged.images[1].param, "messages[1].content[0].image_url");
  // A message that places its own image keeps it there; the next one's image goes with its text.
  const auto placed = chat({{"messages", {user_with_images("<image>\nfirst", 1, "m"), user_with_images("second", 1, "n")}}});
  EXPECT_EQ(placed.chat.question, "<image>\nfirst\n" + image_prefix(1) + "second");
  const auto placed_last = chat({{"messages", {user_with_images("first", 1, "m"), user_with_images("<image> second", 1, "n")}}});
  EXPECT_EQ(placed_last.chat.question, image_prefix(1) + "first\n<image> second");
  ASSERT_EQ(placed_last.images.size(), 2u);
}

TEST(ApiRequestChat, StopStringsAreBoundedInLength) {
  server::RequestLimits limits;
  limits.max_stop_length = 8;
  EXPECT_NO_THROW((void)chat(chat_body({{"stop", std::string(8, 'x')}}), limits));
  expect_refused([&] { (void)chat(chat_body({{"stop", {"ok", std::string(9, 'x')}}}), limits); }, "stop[1]");
}

TEST(ApiRequestChat, ImageLimitCountsEveryTurn) {
  server::RequestLimits limits;
  limits.max_images = 3;
  const json at_limit = {{"messages", {user_with_images("a", 2, "p"), assistant("x"), user_with_images("b", 1, "q")}}};
  EXPECT_EQ(chat(at_limit, limits).images.size(), 3u);
  const json over = {{"messages", {user_with_images("a", 2, "p"), assistant("x"), user_with_images("b", 2, "q")}}};
  expect_refused([&] { (void)chat(over, limits); }, "messages", "too_many_images");
  limits.max_images = 0;
  expect_refused([&] { (void)chat({{"messages", {user_with_images("a", 1, "p")}}}, limits); }, "messages",
                 "too_many_images");
  EXPECT_NO_THROW((void)chat(chat_body(), limits));
}

// ---- chat: generation fields -------------------------------------------------------------------------

TEST(ApiRequestChat, MaxTokensAndFitContext) {
  server::RequestLimits limits;
  limits.default_max_tokens = 321;
  // fit_context only when the request names no budget: a named one must fit or be refused.
  const auto none = chat(chat_body(), limits).chat.generation;
  EXPECT_EQ(none.max_new_tokens, 321);
  EXPECT_TRUE(none.fit_context);
  const auto max_tokens = chat(chat_body({{"max_tokens", 7}}), limits).chat.generation;
  EXPECT_EQ(max_tokens.max_new_tokens, 7);
  EXPECT_FALSE(max_tokens.fit_context);
  const auto completion = chat(chat_body({{"max_completion_tokens", 9}}), limits).chat.generation;
  EXPECT_EQ(completion.max_new_tokens, 9);
  EXPECT_FALSE(completion.fit_context);
  // Both: the newer max_completion_tokens wins.
  EXPECT_EQ(chat(chat_body({{"max_tokens", 7}, {"max_completion_tokens", 9}})).chat.generation.max_new_tokens, 9);
  // An integral float is an integer (some clients send 16.0).
  EXPECT_EQ(chat(chat_body({{"max_tokens", 16.0}})).chat.generation.max_new_tokens, 16);
}

TEST(ApiRequestChat, TemperatureZeroIsGreedyPositiveSamples) {
  EXPECT_FALSE(chat(chat_body()).chat.generation.do_sample);  // the official chat() default
  EXPECT_FALSE(chat(chat_body({{"temperature", 0}})).chat.generation.do_sample);
  EXPECT_FALSE(chat(chat_body({{"temperature", 0.0}})).chat.generation.do_sample);
  for (const double t : {0.01, 0.7, 1.0, 2.0}) {
    const auto g = chat(chat_body({{"temperature", t}})).chat.generation;
    EXPECT_TRUE(g.do_sample) << t;
    EXPECT_DOUBLE_EQ(g.temperature, t);
  }
}

TEST(ApiRequestChat, SamplingFields) {
  for (const double p : {1e-6, 0.5, 1.0}) EXPECT_DOUBLE_EQ(chat(chat_body({{"top_p", p}})).chat.generation.top_p, p);
  EXPECT_EQ(chat(chat_body({{"top_k", 40}})).chat.generation.top_k, 40);
  EXPECT_DOUBLE_EQ(chat(chat_body({{"repetition_penalty", 1.1}})).chat.generation.repetition_penalty, 1.1);
  const auto seeded = chat(chat_body({{"seed", 42}}));
  EXPECT_TRUE(seeded.seed_given);
  EXPECT_EQ(seeded.chat.generation.seed, 42u);
  EXPECT_FALSE(chat(chat_body()).seed_given);
  EXPECT_EQ(chat(chat_body({{"max_tiles", 6}})).chat.max_tiles, 6);
  // n = 1, logprobs false and no tools are what the server does anyway.
  EXPECT_NO_THROW((void)chat(chat_body({{"n", 1}, {"logprobs", false}, {"tools", json::array()}})));
}

TEST(ApiRequestChat, StopStringOrList) {
  EXPECT_EQ(chat(chat_body({{"stop", "END"}})).chat.generation.stop_strings, std::vector<std::string>{"END"});
  const std::vector<std::string> list = {"\n\nUser:", "</s>", "é"};
  EXPECT_EQ(chat(chat_body({{"stop", list}})).chat.generation.stop_strings, list);
  EXPECT_TRUE(chat(chat_body({{"stop", json::array()}})).chat.generation.stop_strings.empty());
  EXPECT_TRUE(chat(chat_body()).chat.generation.stop_strings.empty());
}

TEST(ApiRequestChat, StreamOptionsAndExtras) {
  const auto r = chat(chat_body({{"stream", true}, {"stream_options", {{"include_usage", true}}},
                                 {"return_token_ids", true}}));
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_TRUE(r.return_token_ids);
  const auto plain = chat(chat_body());
  EXPECT_FALSE(plain.stream || plain.include_usage || plain.return_token_ids);
  // Unknown fields are ignored, as OpenAI-compatible servers do.
  EXPECT_NO_THROW((void)chat(chat_body({{"user", "u1"}, {"presence_penalty", 0}})));
}

// ---- embeddings ----------------------------------------------------------------------------------

server::EmbeddingRequest embed(const json& body, const server::RequestLimits& limits = {}) {
  return server::parse_embedding_request(body, limits);
}

TEST(ApiRequestEmbeddings, InputForms) {
  const auto one = embed({{"input", "a cat"}});
  ASSERT_EQ(one.inputs.size(), 1u);
  EXPECT_EQ(one.inputs[0].text, "a cat");
  EXPECT_FALSE(one.inputs[0].image);

  const auto mixed = embed({{"input",
                             {"a dog", text_part("a bird"), image_part("data:image/png;base64,AAAA"),
                              {{"type", "image_url"}, {"image_url", "pic.jpg"}}}}});
  ASSERT_EQ(mixed.inputs.size(), 4u);
  EXPECT_EQ(mixed.inputs[0].text, "a dog");
  EXPECT_EQ(mixed.inputs[1].text, "a bird");
  ASSERT_TRUE(mixed.inputs[2].image);
  EXPECT_FALSE(mixed.inputs[2].text);
  EXPECT_EQ(mixed.inputs[2].image->url, "data:image/png;base64,AAAA");
  EXPECT_EQ(mixed.inputs[2].image->param, "input[2].image_url");
  EXPECT_EQ(mixed.inputs[3].image->url, "pic.jpg");

  const auto image_only = embed({{"input", image_part("data:,x")}});
  ASSERT_TRUE(image_only.inputs.at(0).image);
  EXPECT_EQ(image_only.inputs[0].image->param, "input.image_url");
}

TEST(ApiRequestEmbeddings, EveryBadInputNamesItsParam) {
  const std::vector<Refusal> cases = {
      {json::object(), "input", "missing_field"},
      {{{"input", nullptr}}, "input", "missing_field"},
      {{{"input", ""}}, "input", "invalid_value"},
      {{{"input", json::array()}}, "input", "invalid_value"},
      {{{"input", {"a", "b", ""}}}, "input[2]", "invalid_value"},
      {{{"input", {"a", "b", 3.5}}}, "input[2]", "invalid_type"},
      {{{"input", {"a", "b", true}}}, "input[2]", "invalid_type"},
      {{{"input", {"a", {{"text", "x"}}}}}, "input[1].type", "missing_field"},
      {{{"input", {"a", {{"type", "audio"}}}}}, "input[1].type", "invalid_value"},
      {{{"input", {"a", "b", {{"type", "text"}}}}}, "input[2].text", "missing_field"},
      {{{"input", {{{"type", "text"}, {"text", 5}}}}}, "input[0].text", "invalid_type"},
      {{{"input", {{"type", "text"}, {"text", ""}}}}, "input.text", "invalid_value"},
      {{{"input", {{{"type", "image_url"}}}}}, "input[0].image_url", "missing_field"},
      {{{"input", {{{"type", "image_url"}, {"image_url", {{"url", ""}}}}}}}, "input[0].image_url.url",
       "invalid_value"},
      // Token-id inputs (OpenAI accepts them; a CLIP-style text tower here takes text).
      {{{"input", {1, 2, 3}}}, "input[0]", "unsupported_value"},
      {{{"input", {{1, 2}, {3}}}}, "input[0]", "unsupported_value"},
      {{{"input", 5}}, "input", "unsupported_value"},
      {{{"input", "x"}, {"model", 1}}, "model", "invalid_type"},
      {{{"input", "x"}, {"encoding_format", "hex"}}, "encoding_format", "invalid_value"},
      {{{"input", "x"}, {"encoding_format", 1}}, "encoding_format", "invalid_type"},
      {{{"input", "x"}, {"mode", "h"}}, "mode", "invalid_value"},
      {{{"input", "x"}, {"mode", 0}}, "mode", "invalid_type"},
      {{{"input", "x"}, {"normalize", "yes"}}, "normalize", "invalid_type"},
      {{{"input", "x"}, {"dimensions", 0}}, "dimensions", "invalid_value"},
      {{{"input", "x"}, {"dimensions", 1.5}}, "dimensions", "invalid_type"},
      {{{"input", "x"}, {"dimensions", (1 << 20) + 1}}, "dimensions", "invalid_value"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.body.dump());
    expect_refused([&] { (void)embed(c.body); }, c.param, c.code);
  }
}

TEST(ApiRequestEmbeddings, InputLimit) {
  server::RequestLimits limits;
  limits.max_inputs = 4;
  EXPECT_EQ(embed({{"input", {"a", "b", "c", "d"}}}, limits).inputs.size(), 4u);
  expect_refused([&] { (void)embed({{"input", {"a", "b", "c", "d", "e"}}}, limits); }, "input", "invalid_value");
}

TEST(ApiRequestEmbeddings, FormatModeDimensions) {
  const auto defaults = embed({{"input", "x"}});
  EXPECT_FALSE(defaults.base64);
  EXPECT_FALSE(defaults.mode);
  EXPECT_TRUE(defaults.normalize);
  EXPECT_FALSE(defaults.dimensions);
  EXPECT_FALSE(embed({{"input", "x"}, {"encoding_format", "float"}}).base64);
  EXPECT_TRUE(embed({{"input", "x"}, {"encoding_format", "base64"}}).base64);
  for (const char* c : {"c", "C"}) EXPECT_EQ(embed({{"input", "x"}, {"mode", c}}).mode, EmbedMode::kC);
  for (const char* g : {"g", "G"}) EXPECT_EQ(embed({{"input", "x"}, {"mode", g}}).mode, EmbedMode::kG);
  EXPECT_FALSE(embed({{"input", "x"}, {"normalize", false}}).normalize);
  EXPECT_EQ(embed({{"input", "x"}, {"dimensions", 256}}).dimensions, 256);
  EXPECT_EQ(embed({{"input", "x"}, {"model", "internvl-c"}}).model, "internvl-c");
}

// ---- search -----------------------------------------------------------------------------------------

TEST(ApiRequestSearch, QueryAndK) {
  server::RequestLimits limits;
  limits.max_search_k = 50;
  const auto text = server::parse_search_request({{"query", "a red car"}}, limits);
  EXPECT_EQ(text.query.text, "a red car");
  EXPECT_EQ(text.k, 10);
  const auto image = server::parse_search_request({{"query", image_part("data:,q")}, {"k", 50}}, limits);
  ASSERT_TRUE(image.query.image);
  EXPECT_EQ(image.query.image->param, "query.image_url");
  EXPECT_EQ(image.k, 50);
  EXPECT_EQ(server::parse_search_request({{"query", text_part("t")}, {"k", 1}}, limits).k, 1);
  const std::vector<Refusal> cases = {
      {json::object(), "query", "missing_field"},
      {{{"query", ""}}, "query", "invalid_value"},
      {{{"query", 3.5}}, "query", "invalid_type"},
      {{{"query", {1, 2}}}, "query", "unsupported_value"},
      {{{"query", {{"type", "image_url"}}}}, "query.image_url", "missing_field"},
      {{{"query", "x"}, {"k", 0}}, "k", "invalid_value"},
      {{{"query", "x"}, {"k", 51}}, "k", "invalid_value"},
      {{{"query", "x"}, {"k", "5"}}, "k", "invalid_type"},
      {{{"query", "x"}, {"model", false}}, "model", "invalid_type"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.body.dump());
    expect_refused([&] { (void)server::parse_search_request(c.body, limits); }, c.param, c.code);
  }
}

// ---- base64 and data URLs -------------------------------------------------------------------------

std::vector<uint8_t> random_bytes(std::mt19937& rng, size_t n) {
  std::vector<uint8_t> bytes(n);
  for (auto& b : bytes) b = static_cast<uint8_t>(rng());
  return bytes;
}

TEST(ApiRequestBase64, RoundTripsEveryLength) {
  std::mt19937 rng(7);
  for (size_t n = 0; n <= 64; ++n) {
    for (int trial = 0; trial < 8; ++trial) {
      SCOPED_TRACE("length " + std::to_string(n));
      const auto bytes = random_bytes(rng, n);
      const auto text = server::encode_base64(bytes.data(), bytes.size());
      // Standard alphabet, padded to a multiple of 4.
      EXPECT_EQ(text.size(), (n + 2) / 3 * 4);
      EXPECT_EQ(text.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="),
                std::string::npos);
      EXPECT_EQ(server::decode_base64(text, "p"), bytes);
      // Lenient forms clients send decode to the same bytes: no padding, line breaks, the URL-safe alphabet.
      const auto unpadded = text.substr(0, text.find('='));
      EXPECT_EQ(server::decode_base64(unpadded, "p"), bytes);
      std::string wrapped;
      for (size_t i = 0; i < text.size(); ++i) wrapped += text.substr(i, 1) + (i % 5 == 4 ? "\r\n" : "");
      EXPECT_EQ(server::decode_base64(wrapped, "p"), bytes);
      std::string url_safe = text;
      for (auto& c : url_safe) c = c == '+' ? '-' : c == '/' ? '_' : c;
      EXPECT_EQ(server::decode_base64(url_safe, "p"), bytes);
      // As a data: URL (empty data is refused there).
      if (n > 0) {
        EXPECT_EQ(server::decode_data_url("data:application/octet-stream;base64," + text, "p"), bytes);
      }
    }
  }
}

TEST(ApiRequestBase64, InvalidBase64IsRefused) {
  // Each is a length no whole bytes encode to (4k+1 symbols), a symbol outside both alphabets,
  // data after the padding or too much padding.
  for (const std::string text : {"A", "AAAAA", "AB*C", "AB.C", "QUJD\x80", "AA==AA", "AA=A", "A===", "QQ===",
                                 "Zm9v!", "Zm9v YmFy\x01"}) {
    SCOPED_TRACE(text);
    expect_refused([&] { (void)server::decode_base64(text, "input[0].image_url"); }, "input[0].image_url",
                   "invalid_image");
  }
  // Every single byte outside the alphabets, whitespace and padding is refused.
  const std::string allowed = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_= \t\r\n";
  for (int c = 0; c < 256; ++c) {
    if (allowed.find(static_cast<char>(c)) != std::string::npos) continue;
    const std::string text = std::string("QUJD") + static_cast<char>(c) + "QUJD";
    expect_refused([&] { (void)server::decode_base64(text, "p"); }, "p", "invalid_image");
  }
}

TEST(ApiRequestBase64, DataUrlForms) {
  const std::vector<uint8_t> abc = {'a', 'b', 'c'};
  EXPECT_EQ(server::decode_data_url("data:image/png;base64,YWJj", "p"), abc);
  EXPECT_EQ(server::decode_data_url("data:;base64,YWJj", "p"), abc);
  EXPECT_EQ(server::decode_data_url("data:image/jpeg;name=x.jpg;base64,YWJj", "p"), abc);
  for (const std::string url : {"http://example.com/a.png", "", "data", "DATA:image/png;base64,YWJj",
                                "data:image/png;base64",            // no ','
                                "data:image/png,YWJj",              // not base64
                                "data:,abc", "data:image/png;base64,",  // no data
                                "data:image/png;base64,YW*j"}) {
    SCOPED_TRACE(url);
    expect_refused([&] { (void)server::decode_data_url(url, "messages[0].content[1].image_url"); },
                   "messages[0].content[1].image_url", "invalid_image");
  }
}

// ---- StreamText ----------------------------------------------------------------------------------

// The unary answer for a generated text, as Model::chat makes it: stripped as Python's str.strip
// (extract_response), then cut at each stop string.
std::string unary_answer(const std::string& generated, const std::vector<std::string>& stops) {
  std::string response(internvl::tokenizer::python_strip(generated));
  for (const auto& stop : stops) {
    const auto pos = response.find(stop);
    if (pos != std::string::npos) response.resize(pos);
  }
  return response;
}

struct Streamed {
  std::string response;  // the unary answer
  std::string stream;    // every push() output, then finish(response)
  std::vector<std::string> sent;  // sent() after each push
  std::vector<std::string> outputs;
};

// Pushes `pieces` as the server does. With `as_model`, Model::chat's rule: the piece that completes
// a stop string in the text so far ends generation and is not passed on; the answer is made from
// the text up to and including it.
Streamed stream_pieces(const std::vector<std::string>& pieces, const std::vector<std::string>& stops, bool as_model) {
  Streamed out;
  server::StreamText filter(stops);
  std::string generated;
  for (const auto& piece : pieces) {
    generated += piece;
    bool stopped = false;
    for (const auto& stop : stops) stopped = stopped || generated.find(stop) != std::string::npos;
    if (as_model && stopped) break;
    out.outputs.push_back(filter.push(piece));
    out.stream += out.outputs.back();
    out.sent.push_back(filter.sent());
  }
  out.response = unary_answer(generated, stops);
  out.stream += filter.finish(out.response);
  return out;
}

// Text made of fragments that exercise the filter: Python whitespace (ASCII and not), multi-byte
// code points, pieces of the stop strings.
std::string random_text(std::mt19937& rng, const std::vector<std::string>& stops) {
  static const std::vector<std::string> fragments = {
      "a", "b", "Hello", " ", "  ", "\n", "\t", "\r\n", "\x1c", "\xc2\xa0" /* U+00A0 */, "\xe3\x80\x80" /* U+3000 */,
      "\xe2\x80\x83" /* U+2003 */, "\xc2\x85" /* U+0085 */, "\xc3\xa9" /* é */, "\xe4\xb8\xad" /* 中 */,
      "\xf0\x9f\x98\x80" /* U+1F600 */, "\xe2\x80\x8b" /* U+200B, not whitespace */, "<", "/s>", "User:", ".",
  };
  std::string text;
  const int n = static_cast<int>(rng() % 14);
  for (int i = 0; i < n; ++i) {
    const auto pick = rng() % 10;
    if (pick == 0 && !stops.empty()) {
      const auto& stop = stops[rng() % stops.size()];
      // A stop string or a prefix of one, ending on a code point boundary.
      size_t n = 1 + rng() % stop.size();
      while (n < stop.size() && (static_cast<unsigned char>(stop[n]) & 0xC0) == 0x80) ++n;
      text += stop.substr(0, n);
    } else {
      text += fragments[rng() % fragments.size()];
    }
  }
  return text;
}

// Splits at random byte offsets (also inside code points: the filter must cope).
std::vector<std::string> random_split(std::mt19937& rng, const std::string& text, bool at_code_points) {
  std::vector<std::string> pieces;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t n = 1 + rng() % 6;
    if (rng() % 8 == 0) n = 0;  // empty pieces happen (a token that decodes to nothing yet)
    size_t end = std::min(text.size(), pos + n);
    while (at_code_points && end < text.size() && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) ++end;
    pieces.push_back(text.substr(pos, end - pos));
    pos = end;
  }
  return pieces;
}

const std::vector<std::vector<std::string>> kStopSets = {
    {}, {"END"}, {"\n\nUser:", "</s>"}, {"aa"}, {"\xc3\xa9!"}, {"  "}, {"\n"}, {"a", "ab", "b"}, {"Hello World"},
};

// Bytes as hex, for failure messages (the texts hold control and partial code points).
std::string hex(const std::string& text) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (const unsigned char c : text) out += std::string{digits[c >> 4], digits[c & 15], ' '};
  return out;
}

void check_stream(const Streamed& s, const std::vector<std::string>& stops, bool pieces_are_utf8) {
  EXPECT_EQ(hex(s.stream), hex(s.response));
  for (const auto& sent : s.sent) {
    // What was sent is always the start of the answer, so nothing at or after a stop string cut.
    EXPECT_EQ(s.response.compare(0, sent.size(), sent), 0) << "sent " << hex(sent);
    for (const auto& stop : stops) EXPECT_EQ(sent.find(stop), std::string::npos);
  }
  if (pieces_are_utf8) {
    for (const auto& out : s.outputs) {
      EXPECT_TRUE(internvl::tokenizer::is_valid_utf8(out)) << hex(out);
    }
  }
}

TEST(StreamText, StreamEqualsUnaryAnswerForRandomSplits) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 4000; ++trial) {
    const auto& stops = kStopSets[trial % kStopSets.size()];
    const auto text = random_text(rng, stops);
    const bool at_code_points = trial % 2 == 0;
    const auto pieces = random_split(rng, text, at_code_points);
    for (const bool as_model : {true, false}) {
      const auto s = stream_pieces(pieces, stops, as_model);
      std::string split;
      for (const auto& piece : pieces) split += "[" + hex(piece) + "]";
      SCOPED_TRACE(::testing::Message() << "trial " << trial << " pieces " << split << " as_model " << as_model);
      check_stream(s, stops, at_code_points);
      if (::testing::Test::HasFailure()) return;
    }
  }
}

TEST(StreamText, LeadingAndTrailingWhitespaceIsPythons) {
  // U+3000, U+00A0 and \x1c are whitespace to str.strip(), so never sent at the ends.
  for (const std::string space : {" ", "\n", "\x1c", "\xc2\xa0", "\xe3\x80\x80", "\xe2\x80\xa8"}) {
    SCOPED_TRACE(space);
    server::StreamText filter({});
    EXPECT_EQ(filter.push(space + space), "");
    EXPECT_EQ(filter.push("Hi" + space), "Hi");
    EXPECT_EQ(filter.push("there" + space), space + "there");
    EXPECT_EQ(filter.finish("Hi" + space + "there"), "");
    EXPECT_EQ(filter.sent(), "Hi" + space + "there");
  }
  // U+200B (zero width space) is not whitespace to Python: sent at once.
  server::StreamText zwsp({});
  EXPECT_EQ(zwsp.push("\xe2\x80\x8bHi"), "\xe2\x80\x8bHi");
}

TEST(StreamText, HoldsBackAPossibleStopStringUntilDecided) {
  server::StreamText filter({"</s>"});
  // The space stays before "<": the answer is stripped before it is cut, so "one </s>" is "one ".
  EXPECT_EQ(filter.push("one <"), "one ");
  EXPECT_EQ(filter.push("b> two </"), "<b> two ");
  EXPECT_EQ(filter.push("s> three"), "");   // the stop string: nothing from it on
  EXPECT_EQ(filter.push(" more"), "");
  EXPECT_EQ(filter.finish("one <b> two "), "");
  EXPECT_EQ(filter.sent(), "one <b> two ");
}

TEST(StreamText, FinishSendsWhatWasHeldBack) {
  server::StreamText filter({"ENDING"});
  EXPECT_EQ(filter.push("done END"), "done ");
  EXPECT_EQ(filter.finish("done END"), "END");  // generation stopped on length: the prefix was text
}

}  // namespace
