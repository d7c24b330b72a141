#include "tokenizer/chat_template.h"

#include <cmath>
#include <map>

#include "common/check.h"
#include "tokenizer/text_util.h"

namespace internvl::tokenizer {

namespace {

// The default system message of the InternVL 1.5 / 2.0 templates (internlm2-chat, Hermes-2, phi3-chat).
constexpr const char* kInternVLSystemMessage =
    "你是由上海人工智能实验室联合商汤科技开发的书生多模态大模型，英文名叫InternVL, 是一个有用无害的人工智能助手。";
// The default system message of the InternVL 2.5 template.
constexpr const char* kInternVL25SystemMessage = "你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的多模态大语言模型。";

std::map<std::string, ConversationTemplate> make_registry() {
  std::map<std::string, ConversationTemplate> registry;
  const auto add = [&](ConversationTemplate t) { registry.emplace(t.name, std::move(t)); };

  // InternVL-Chat-V1-1.
  ConversationTemplate zh;
  zh.name = "internvl_zh";
  zh.system_template = "";
  zh.user_role = "<human>";
  zh.assistant_role = "<bot>";
  zh.style = SeparatorStyle::kInternVLZh;
  zh.sep = "</s>";
  zh.sep2 = " ";
  add(zh);

  // ChatML templates: Hermes-2 (InternVL-Chat-V1-2 and others), internlm2-chat (InternVL2),
  // phi3-chat (InternVL2-4B), internvl2_5.
  ConversationTemplate chatml;
  chatml.system_template = "<|im_start|>system\n{system_message}";
  chatml.system_message = kInternVLSystemMessage;
  chatml.user_role = "<|im_start|>user\n";
  chatml.assistant_role = "<|im_start|>assistant\n";
  chatml.style = SeparatorStyle::kMpt;
  chatml.sep = "<|im_end|>";

  ConversationTemplate hermes = chatml;
  hermes.name = "Hermes-2";
  hermes.stop_strings = {"<|endoftext|>"};
  add(hermes);

  ConversationTemplate internlm2 = chatml;
  internlm2.name = "internlm2-chat";
  add(internlm2);

  ConversationTemplate phi3;
  phi3.name = "phi3-chat";
  phi3.system_template = "<|system|>\n{system_message}";
  phi3.system_message = kInternVLSystemMessage;
  phi3.user_role = "<|user|>\n";
  phi3.assistant_role = "<|assistant|>\n";
  phi3.style = SeparatorStyle::kMpt;
  phi3.sep = "<|end|>";
  add(phi3);

  ConversationTemplate v25 = chatml;
  v25.name = "internvl2_5";
  v25.system_message = kInternVL25SystemMessage;
  v25.sep = "<|im_end|>\n";
  add(v25);
  return registry;
}

const std::map<std::string, ConversationTemplate>& registry() {
  static const std::map<std::string, ConversationTemplate> instance = make_registry();
  return instance;
}

}  // namespace

std::string ConversationTemplate::render(const std::string& system_message,
                                         const std::vector<std::pair<std::string, std::string>>& messages) const {
  // system_template.format(system_message=...): the template holds at most that one field.
  const std::string system_prompt = python_replace(system_template, "{system_message}", system_message);
  std::string out;
  switch (style) {
    case SeparatorStyle::kMpt:
      out = system_prompt + sep;
      for (const auto& [role, message] : messages) {
        if (!message.empty()) out += role + message + sep;
        else out += role;
      }
      return out;
    case SeparatorStyle::kInternVLZh: {
      const std::string seps[2] = {sep2, sep};
      out = system_message + seps[0];
      for (size_t i = 0; i < messages.size(); ++i) {
        const auto& [role, message] = messages[i];
        if (!message.empty()) out += role + ": " + message + seps[i % 2];
        else out += role + ":";
      }
      return out;
    }
  }
  INTERNVL_THROW(InvalidArgument, "conversation template '", name, "': invalid separator style");
}

std::string ConversationTemplate::eos_token() const { return std::string(python_strip(sep)); }

const ConversationTemplate& get_conversation_template(const std::string& name) {
  const auto& all = registry();
  auto it = all.find(name);
  if (it == all.end()) {
    std::string known;
    for (const auto& [key, value] : all) known += (known.empty() ? "" : ", ") + key;
    INTERNVL_THROW(InvalidArgument, "unknown conversation template '", name, "' (known: ", known, ")");
  }
  return it->second;
}

std::vector<std::string> conversation_template_names() {
  std::vector<std::string> names;
  for (const auto& [key, value] : registry()) names.push_back(key);
  return names;
}

int64_t num_image_tokens(int64_t image_size, int64_t patch_size, double downsample_ratio) {
  INTERNVL_CHECK(image_size > 0 && patch_size > 0 && downsample_ratio > 0, InvalidArgument,
                 "num_image_tokens: image_size, patch_size and downsample_ratio must be positive");
  const int64_t grid = image_size / patch_size;
  return static_cast<int64_t>(static_cast<double>(grid * grid) * (downsample_ratio * downsample_ratio));
}

std::string build_chat_prompt(const ConversationTemplate& conversation, const std::string& system_message,
                              const ChatPromptRequest& request, int64_t num_image_token,
                              const ImageTokenStrings& image_tokens) {
  INTERNVL_CHECK(num_image_token >= 0, InvalidArgument, "build_chat_prompt: negative num_image_token");
  for (const int64_t tiles : request.num_patches_list)
    INTERNVL_CHECK(tiles > 0, InvalidArgument, "build_chat_prompt: every image needs at least one tile (got ",
                   tiles, ")");
  std::string question = request.question;
  const bool has_image = !request.num_patches_list.empty();
  if (!request.history.has_value() && has_image && question.find(image_tokens.placeholder) == std::string::npos)
    question = image_tokens.placeholder + "\n" + question;

  std::vector<std::pair<std::string, std::string>> messages;
  if (request.history.has_value()) {
    for (const auto& turn : *request.history) {
      messages.emplace_back(conversation.user_role, turn.question);
      messages.emplace_back(conversation.assistant_role, turn.answer);
    }
  }
  messages.emplace_back(conversation.user_role, question);
  messages.emplace_back(conversation.assistant_role, std::string());
  std::string query = conversation.render(system_message, messages);

  for (const int64_t tiles : request.num_patches_list) {
    std::string expansion = image_tokens.start;
    const int64_t count = num_image_token * tiles;
    expansion.reserve(expansion.size() + count * image_tokens.context.size() + image_tokens.end.size());
    for (int64_t i = 0; i < count; ++i) expansion += image_tokens.context;
    expansion += image_tokens.end;
    query = python_replace(query, image_tokens.placeholder, expansion, 1);
  }
  return query;
}

std::string extract_response(const ConversationTemplate& conversation, const std::string& decoded) {
  const std::string eos = conversation.eos_token();
  std::string_view head = decoded;
  if (!eos.empty()) {
    const size_t cut = head.find(eos);
    if (cut != std::string_view::npos) head = head.substr(0, cut);
  }
  return std::string(python_strip(head));
}

}  // namespace internvl::tokenizer
