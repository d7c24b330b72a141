// internvl-server driven by the official `openai` Python client (tests/server/openai_session.py)
// on every bundled checkpoint: chat (plain and streamed, greedy and sampled), multi-turn with
// images, several images, embeddings float and base64 with text and image inputs. What the
// client receives must equal what the library gives in-process for the same request (ids exact,
// floats within 1e-6 relative) and, for greedy chat, the official references' ids.
#include <gtest/gtest.h>
#include <internvl/internvl.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <vector>

#include "api_request.h"
#include "server/server_process.h"
#include "support/fixtures.h"

using internvl::ChatRequest;
using internvl::Image;
using internvl::Model;
using nlohmann::json;

namespace {

std::string image_path(const std::string& file) { return internvl::testing::images_dir() + "/" + file; }

std::string data_url(const std::string& file) {
  const auto bytes = internvl::testing::read_file(image_path(file));
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
  return "data:image/jpeg;base64," + internvl::server::encode_base64(data, bytes.size());
}

// The question of a reference conversation without its "<image>" placeholders: the server must
// rebuild them from the image parts as the official prompt writes them.
std::string plain_text(const std::string& question) {
  static const std::regex placeholder(R"((Image-[0-9]+: )?<image>\n)");
  return std::regex_replace(question, placeholder, "");
}

json user_message(const std::string& question, const std::vector<std::string>& images) {
  json parts = json::array();
  for (const auto& image : images) parts.push_back({{"type", "image_url"}, {"image_url", {{"url", data_url(image)}}}});
  parts.push_back({{"type", "text"}, {"text", plain_text(question)}});
  return {{"role", "user"}, {"content", parts}};
}

// OpenAI messages for a reference conversation: images go with the turn whose question holds
// their placeholders (history first, in order).
json messages_for(const json& conversation) {
  auto images = internvl::testing::conversation_images(conversation);
  size_t next = 0;
  auto take = [&](const std::string& question) {
    std::vector<std::string> mine;
    for (auto pos = question.find("<image>"); pos != std::string::npos; pos = question.find("<image>", pos + 1)) {
      if (next < images.size()) mine.push_back(images[next++]);
    }
    return mine;
  };
  json messages = json::array();
  if (!conversation.at("history_in").is_null()) {
    for (const auto& turn : conversation.at("history_in")) {
      const auto q = turn.at(0).get<std::string>();
      messages.push_back(user_message(q, take(q)));
      messages.push_back({{"role", "assistant"}, {"content", turn.at(1).get<std::string>()}});
    }
  }
  const auto q = conversation.at("question").get<std::string>();
  auto mine = take(q);
  // With no history and no placeholder, chat() puts every image before the question.
  while (next < images.size()) mine.push_back(images[next++]);
  messages.push_back(user_message(q, mine));
  return messages;
}

ChatRequest request_for(const json& conversation, int max_new_tokens) {
  ChatRequest request;
  request.question = conversation.at("question").get<std::string>();
  for (const auto& image : internvl::testing::conversation_images(conversation)) {
    request.images.push_back(Image::from_file(image_path(image)));
  }
  if (!conversation.at("history_in").is_null()) {
    for (const auto& turn : conversation.at("history_in")) {
      request.history.push_back({turn.at(0).get<std::string>(), turn.at(1).get<std::string>()});
    }
  }
  request.generation.max_new_tokens = max_new_tokens;
  return request;
}

std::string finish_reason(const internvl::ChatResult& result) {
  return result.finish_reason == internvl::FinishReason::kLength ? "length" : "stop";
}

json run_session(const internvl::testing::ServerProcess& server, const json& scenario, const std::string& tag) {
  const auto scenario_path = internvl::testing::unique_temp_path("openai", tag + "_scenario.json");
  const auto results_path = internvl::testing::unique_temp_path("openai", tag + "_results.json");
  // The transcript stays in the build tree for the issue note.
  const auto transcript_path = "openai_transcript_" + tag + ".txt";
  EXPECT_TRUE(internvl::testing::write_file(scenario_path, scenario.dump()));
  const auto run = internvl::testing::run_python("openai_session.py",
                                                 {server.base_url(), scenario_path, results_path, transcript_path});
  EXPECT_EQ(run.status, 0) << internvl::testing::describe(run);
  if (run.status != 0) return json::array();
  return internvl::testing::read_json(results_path);
}

class OpenAIChat : public ::testing::TestWithParam<std::string> {};

TEST_P(OpenAIChat, AnswersEqualTheLibraryInProcess) {
  const auto fixture = GetParam();
  const auto path = internvl::testing::fixture_path(fixture);
  const auto ref = internvl::testing::fixture_reference(fixture);
  const int max_new = ref.at("generation").at("max_new_tokens").get<int>();
  std::string why;
  auto server = internvl::testing::ServerProcess::start({"--model", path, "--name", "tiny-chat"}, &why);
  ASSERT_TRUE(server) << why;
  const auto model = Model::load(path);

  json scenario = json::array();
  std::vector<ChatRequest> expected_requests;
  std::vector<json> conversations;
  for (const auto& conversation : ref.at("inputs").at("conversations")) {
    const auto key = conversation.at("key").get<std::string>();
    for (const bool stream : {false, true}) {
      scenario.push_back({{"kind", "chat"},
                          {"name", key},
                          {"model", "tiny-chat"},
                          {"messages", messages_for(conversation)},
                          {"max_tokens", max_new},
                          {"stream", stream}});
      expected_requests.push_back(request_for(conversation, max_new));
      conversations.push_back(conversation);
    }
  }
  // Sampled, with a seed: the same seed gives the same tokens in-process.
  const auto& first = ref.at("inputs").at("conversations").at(0);
  for (const bool stream : {false, true}) {
    scenario.push_back({{"kind", "chat"},
                        {"name", "sampled"},
                        {"model", "tiny-chat"},
                        {"messages", messages_for(first)},
                        {"max_tokens", max_new},
                        {"temperature", 0.7},
                        {"top_p", 0.9},
                        {"seed", 1234},
                        {"extra", {{"top_k", 20}}},
                        {"stream", stream}});
    auto request = request_for(first, max_new);
    request.generation.do_sample = true;
    request.generation.temperature = 0.7;
    request.generation.top_p = 0.9;
    request.generation.top_k = 20;
    request.generation.seed = 1234;
    expected_requests.push_back(request);
    conversations.push_back(json());
  }
  scenario.push_back({{"kind", "error"},
                      {"name", "unknown model"},
                      {"model", "no-such-model"},
                      {"messages", json::array({{{"role", "user"}, {"content", "hi"}}})}});

  const auto results = run_session(*server, scenario, fixture);
  ASSERT_EQ(results.size(), scenario.size());
  for (size_t i = 0; i < expected_requests.size(); ++i) {
    SCOPED_TRACE(scenario[i].at("name").get<std::string>() + (scenario[i].at("stream").get<bool>() ? " (stream)" : ""));
    const auto& got = results[i];
    const auto expected = model.chat(expected_requests[i]);
    EXPECT_EQ(got.at("content").get<std::string>(), expected.response);
    EXPECT_EQ(got.at("finish_reason").get<std::string>(), finish_reason(expected));
    ASSERT_TRUE(got.at("token_ids").is_array());
    EXPECT_EQ(got.at("token_ids").get<std::vector<int64_t>>(), expected.output_ids);
    EXPECT_EQ(got.at("prompt_token_ids").get<std::vector<int64_t>>(), expected.input_ids);
    EXPECT_EQ(got.at("usage").at("prompt_tokens").get<size_t>(), expected.input_ids.size());
    EXPECT_EQ(got.at("usage").at("completion_tokens").get<size_t>(), expected.output_ids.size());
    if (!conversations[i].is_null()) {
      // Greedy: the official chat()'s prompt ids too.
      EXPECT_EQ(got.at("prompt_token_ids").get<std::vector<int64_t>>(),
                conversations[i].at("input_ids").get<std::vector<int64_t>>());
    }
    if (scenario[i].at("stream").get<bool>()) EXPECT_GT(got.at("chunks").get<int>(), 2);
  }
  const auto& refused = results.back();
  EXPECT_TRUE(refused.at("raised").get<bool>());
  EXPECT_EQ(refused.at("status").get<int>(), 404);
  EXPECT_EQ(refused.at("error").at("param"), "model");
  EXPECT_EQ(refused.at("error").at("code"), "model_not_found");
  EXPECT_EQ(server->stop(), 0) << server->stderr_text();
}

INSTANTIATE_TEST_SUITE_P(ChatFixtures, OpenAIChat,
                         ::testing::ValuesIn(internvl::testing::fixtures_with_architecture("InternVLChatModel")),
                         internvl::testing::FixtureName());
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(OpenAIChat);

class OpenAIEmbeddings : public ::testing::TestWithParam<std::string> {};

::testing::AssertionResult RowsClose(const json& rows, const internvl::Matrix& expected) {
  if (!rows.is_array() || rows.size() != static_cast<size_t>(expected.rows())) {
    return ::testing::AssertionFailure() << "got " << rows.size() << " rows, expected " << expected.rows();
  }
  for (int64_t r = 0; r < expected.rows(); ++r) {
    const auto row = rows[r].get<std::vector<double>>();
    if (row.size() != static_cast<size_t>(expected.cols())) return ::testing::AssertionFailure() << "row " << r << " width";
    for (int64_t c = 0; c < expected.cols(); ++c) {
      const double e = expected(r, c);
      if (std::fabs(row[c] - e) > 1e-6 * std::max(1.0, std::fabs(e))) {
        return ::testing::AssertionFailure() << "row " << r << " col " << c << ": " << row[c] << " vs " << e;
      }
    }
  }
  return ::testing::AssertionSuccess();
}

TEST_P(OpenAIEmbeddings, EmbeddingsEqualTheLibraryInProcess) {
  const auto fixture = GetParam();
  const auto path = internvl::testing::fixture_path(fixture);
  std::string why;
  auto server = internvl::testing::ServerProcess::start({"--model", path, "--name", "tiny-clip"}, &why);
  ASSERT_TRUE(server) << why;
  const auto model = Model::load(path);
  const std::vector<std::string> texts = {"a photo of a cat", "summarize: two dogs on grass", "東京の夜景"};
  std::vector<std::string> files;
  for (const auto& entry : internvl::testing::read_json(internvl::testing::images_dir() + "/images.json")) {
    files.push_back(entry.at("file").get<std::string>());
    if (files.size() == 2) break;
  }
  ASSERT_EQ(files.size(), 2u);
  json mixed = json::array({texts[0]});
  for (const auto& f : files) mixed.push_back({{"type", "image_url"}, {"image_url", {{"url", data_url(f)}}}});

  json scenario = json::array();
  std::vector<internvl::Matrix> expected;
  for (const auto& [name, mode] : {std::pair<std::string, internvl::EmbedMode>{"tiny-clip-c", internvl::EmbedMode::kC},
                                   {"tiny-clip-g", internvl::EmbedMode::kG}}) {
    internvl::EmbedOptions options;
    options.mode = mode;
    options.normalize = true;
    for (const char* format : {"float", ""}) {  // "": the client's default, base64
      scenario.push_back({{"kind", "embeddings"}, {"name", name}, {"model", name}, {"input", texts},
                          {"encoding_format", format}});
      expected.push_back(model.embed_text(texts, options));
    }
    std::vector<Image> images;
    for (const auto& f : files) images.push_back(Image::from_file(image_path(f)));
    const auto image_rows = model.embed_image(images, options);
    const auto text_row = model.embed_text({texts[0]}, options);
    internvl::Matrix rows(1 + image_rows.rows(), image_rows.cols());
    rows.row(0) = text_row.row(0);
    rows.bottomRows(image_rows.rows()) = image_rows;
    scenario.push_back({{"kind", "embeddings"}, {"name", name + " mixed"}, {"model", name}, {"input", mixed},
                        {"encoding_format", "base64"}});
    expected.push_back(rows);
  }
  const auto results = run_session(*server, scenario, fixture);
  ASSERT_EQ(results.size(), scenario.size());
  for (size_t i = 0; i < scenario.size(); ++i) {
    SCOPED_TRACE(scenario[i].dump().substr(0, 120));
    EXPECT_TRUE(RowsClose(results[i].at("embeddings"), expected[i]));
  }
  EXPECT_EQ(server->stop(), 0) << server->stderr_text();
}

INSTANTIATE_TEST_SUITE_P(RetrievalFixtures, OpenAIEmbeddings,
                         ::testing::ValuesIn(internvl::testing::fixtures_with_architecture("InternVLModel")),
                         internvl::testing::FixtureName());
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(OpenAIEmbeddings);

}  // namespace
