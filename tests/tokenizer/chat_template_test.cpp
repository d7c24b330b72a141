// Conversation templates and InternVLChatModel.chat() prompt construction against the fixtures'
// prompt strings, plus the structural rules of conversation.py.
#include <gtest/gtest.h>

#include <algorithm>

#include "internvl/error.h"
#include "support/fixtures.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace internvl::tokenizer {
namespace {

using internvl::testing::fixture_config;
using internvl::testing::fixture_path;
using internvl::testing::fixture_reference;
using internvl::testing::fixtures_with_architecture;
using nlohmann::json;

size_t count_of(const std::string& text, const std::string& needle) {
  size_t count = 0;
  for (size_t pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + needle.size())) ++count;
  return count;
}

// num_image_token of InternVLChatModel: (force_image_size or vision image_size // patch)^2 * ratio^2.
int64_t num_image_token_of(const json& config) {
  const json& vision = config["vision_config"];
  int64_t image_size = vision.value("image_size", 224);
  if (config.contains("force_image_size") && config["force_image_size"].is_number_integer())
    image_size = config["force_image_size"].get<int64_t>();
  return num_image_tokens(image_size, vision.value("patch_size", 14), config.value("downsample_ratio", 0.5));
}

TEST(ChatTemplate, PromptsMatchReference) {
  const auto fixtures = fixtures_with_architecture("InternVLChatModel");
  if (fixtures.empty()) GTEST_SKIP() << "no InternVLChatModel fixture";
  for (const auto& fixture : fixtures) {
    SCOPED_TRACE(fixture);
    const json config = fixture_config(fixture);
    const json ref = fixture_reference(fixture);
    const auto& conversation = get_conversation_template(config["template"].get<std::string>());
    const json summary = ref.value("config_summary", json::object());
    const std::string system_message = config.contains("system_message")
                                           ? config["system_message"].get<std::string>()
                                           : summary.value("system_message", conversation.system_message);
    // Without a config override the model uses the template's default system message.
    if (!config.contains("system_message") && summary.contains("system_message"))
      EXPECT_EQ(conversation.system_message, summary["system_message"].get<std::string>());
    const int64_t num_image_token = num_image_token_of(config);
    if (summary.contains("num_image_token")) EXPECT_EQ(num_image_token, summary["num_image_token"].get<int64_t>());

    for (const auto& conv : ref["inputs"]["conversations"]) {
      SCOPED_TRACE(conv["key"].get<std::string>());
      ChatPromptRequest request;
      request.question = conv["question"].get<std::string>();
      if (!conv["history_in"].is_null()) {
        std::vector<ChatTurn> history;
        for (const auto& turn : conv["history_in"])
          history.push_back({turn[0].get<std::string>(), turn[1].get<std::string>()});
        request.history = history;
      }
      request.num_patches_list = conv["num_patches_list"].get<std::vector<int64_t>>();
      const std::string prompt = build_chat_prompt(conversation, system_message, request, num_image_token);
      EXPECT_EQ(prompt, conv["prompt"].get<std::string>());
      if (conv.contains("n_img_context_tokens"))
        EXPECT_EQ(static_cast<int64_t>(count_of(prompt, "<IMG_CONTEXT>")), conv["n_img_context_tokens"].get<int64_t>());
    }
  }
}

TEST(ChatTemplate, ResponsesMatchReference) {
  const auto fixtures = fixtures_with_architecture("InternVLChatModel");
  if (fixtures.empty()) GTEST_SKIP() << "no InternVLChatModel fixture";
  for (const auto& fixture : fixtures) {
    SCOPED_TRACE(fixture);
    const json config = fixture_config(fixture);
    const json ref = fixture_reference(fixture);
    const auto& conversation = get_conversation_template(config["template"].get<std::string>());
    const Tokenizer tokenizer(fixture_path(fixture));
    const json summary = ref.value("config_summary", json::object());
    if (summary.contains("eos_token_id_used_by_chat"))
      EXPECT_EQ(tokenizer.token_to_id(conversation.eos_token()), summary["eos_token_id_used_by_chat"].get<int64_t>());
    DecodeOptions options;
    // The official response decode (skip_special_tokens=True except the InternVL3.5 code).
    const std::string response_decode = ref.value("generation", json::object()).value("response_decode", "");
    options.skip_special_tokens = response_decode.find("skip_special_tokens=False") == std::string::npos;
    for (const auto& conv : ref["inputs"]["conversations"]) {
      SCOPED_TRACE(conv["key"].get<std::string>());
      const auto generated = conv["generated_ids"].get<std::vector<int64_t>>();
      const std::string response = extract_response(conversation, tokenizer.decode(generated, options));
      EXPECT_EQ(response, conv["response"].get<std::string>());
      if (conv.value("stopped_on_eos", false)) {
        EXPECT_EQ(generated.back(), tokenizer.token_to_id(conversation.eos_token()));
      }
    }
  }
}

TEST(ChatTemplate, KnownTemplates) {
  const auto names = conversation_template_names();
  for (const char* name : {"internlm2-chat", "Hermes-2", "internvl2_5", "phi3-chat", "internvl_zh"})
    EXPECT_NE(std::find(names.begin(), names.end(), name), names.end()) << name;
  EXPECT_EQ(get_conversation_template("internlm2-chat").eos_token(), "<|im_end|>");
  EXPECT_EQ(get_conversation_template("Hermes-2").eos_token(), "<|im_end|>");
  EXPECT_EQ(get_conversation_template("internvl2_5").eos_token(), "<|im_end|>");  // sep "<|im_end|>\n"
  EXPECT_EQ(get_conversation_template("phi3-chat").eos_token(), "<|end|>");
  EXPECT_THROW(get_conversation_template("no-such-template"), InvalidArgument);
  EXPECT_THROW(get_conversation_template(""), InvalidArgument);
}

TEST(ChatTemplate, MptLayout) {
  for (const char* name : {"internlm2-chat", "Hermes-2", "internvl2_5", "phi3-chat"}) {
    SCOPED_TRACE(name);
    const auto& t = get_conversation_template(name);
    ChatPromptRequest request;
    request.question = "Q2";
    request.history = std::vector<ChatTurn>{{"Q1", "A1"}};
    const std::string prompt = build_chat_prompt(t, "SYS", request, 4);
    const std::string system = t.system_template.substr(0, t.system_template.find("{system_message}")) + "SYS";
    EXPECT_EQ(prompt, system + t.sep + t.user_role + "Q1" + t.sep + t.assistant_role + "A1" + t.sep + t.user_role +
                          "Q2" + t.sep + t.assistant_role);
  }
  // internvl_zh: "<human>: q</s><bot>: a ..." with the system message first.
  const auto& zh = get_conversation_template("internvl_zh");
  EXPECT_EQ(zh.render("S", {{zh.user_role, "q"}, {zh.assistant_role, ""}}), "S <human>: q <bot>:");
}

TEST(ChatTemplate, ImagePlaceholderRules) {
  const auto& t = get_conversation_template("internlm2-chat");
  const std::string image3 = "<img>" + std::string() + [] {
    std::string s;
    for (int i = 0; i < 2 * 3; ++i) s += "<IMG_CONTEXT>";
    return s;
  }() + "</img>";

  // No history, an image, no placeholder: "<image>\n" is prepended.
  ChatPromptRequest request;
  request.question = "Describe.";
  request.num_patches_list = {3};
  std::string prompt = build_chat_prompt(t, "S", request, 2);
  EXPECT_NE(prompt.find(t.user_role + image3 + "\nDescribe." + t.sep), std::string::npos) << prompt;
  EXPECT_EQ(count_of(prompt, "<IMG_CONTEXT>"), 6u);

  // history=[] (not None): nothing is prepended and no placeholder means no image tokens.
  request.history = std::vector<ChatTurn>{};
  prompt = build_chat_prompt(t, "S", request, 2);
  EXPECT_EQ(prompt.find("<img>"), std::string::npos);

  // Second turn: the first placeholder of the whole prompt (in the history) is replaced.
  request.history = std::vector<ChatTurn>{{"<image>\nFirst?", "Answer."}};
  request.question = "Second? <image>";
  prompt = build_chat_prompt(t, "S", request, 2);
  EXPECT_NE(prompt.find(t.user_role + image3 + "\nFirst?"), std::string::npos);
  EXPECT_NE(prompt.find("Second? <image>"), std::string::npos);

  // Several images: placeholders replaced in order with their own tile counts.
  request.history.reset();
  request.question = "A <image> B <image> C";
  request.num_patches_list = {1, 2};
  prompt = build_chat_prompt(t, "S", request, 5);
  const size_t first = prompt.find("<img>");
  const size_t second = prompt.find("<img>", first + 1);
  ASSERT_NE(second, std::string::npos);
  EXPECT_EQ(count_of(prompt.substr(first, second - first), "<IMG_CONTEXT>"), 5u);
  EXPECT_EQ(count_of(prompt.substr(second), "<IMG_CONTEXT>"), 10u);
  EXPECT_EQ(prompt.find("<image>"), std::string::npos);

  // No image: the question is left alone.
  request = ChatPromptRequest{};
  request.question = "Hello";
  prompt = build_chat_prompt(t, "S", request, 256);
  EXPECT_EQ(prompt, "<|im_start|>system\nS<|im_end|><|im_start|>user\nHello<|im_end|><|im_start|>assistant\n");

  request.num_patches_list = {0};
  EXPECT_THROW(build_chat_prompt(t, "S", request, 256), InvalidArgument);
}

TEST(ChatTemplate, NumImageTokens) {
  EXPECT_EQ(num_image_tokens(448, 14, 0.5), 256);
  EXPECT_EQ(num_image_tokens(224, 14, 0.5), 64);
  EXPECT_EQ(num_image_tokens(448, 14, 1.0), 1024);
  EXPECT_THROW(num_image_tokens(0, 14, 0.5), InvalidArgument);
}

TEST(ChatTemplate, ExtractResponse) {
  const auto& t = get_conversation_template("internlm2-chat");
  EXPECT_EQ(extract_response(t, "  hello world \n<|im_end|> trailing"), "hello world");
  EXPECT_EQ(extract_response(t, "\t no eos \xE3\x80\x80"), "no eos");  // U+3000 is whitespace
  EXPECT_EQ(extract_response(t, ""), "");
}

}  // namespace
}  // namespace internvl::tokenizer
