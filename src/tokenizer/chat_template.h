// Conversation templates and prompt construction of the official InternVL chat code
// (internvl_chat/internvl/conversation.py and InternVLChatModel.chat in
// modeling_internvl_chat.py).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace internvl::tokenizer {

// conversation.py SeparatorStyle values used by InternVL templates.
enum class SeparatorStyle {
  kMpt,        // system_prompt + sep, then role + message + sep per turn (ChatML-like)
  kInternVLZh  // InternVL-Chat-V1-1: system_message + sep2, then "role: message" + (sep2|sep)
};

struct ConversationTemplate {
  std::string name;
  std::string system_template = "{system_message}";  // "{system_message}" is substituted
  std::string system_message;                          // the template's default system message
  std::string user_role;                               // roles[0]
  std::string assistant_role;                          // roles[1]
  SeparatorStyle style = SeparatorStyle::kMpt;
  std::string sep;
  std::string sep2;
  std::vector<std::string> stop_strings;  // conversation.py stop_str (chat() does not use it)

  // Conversation.get_prompt(): `messages` are (role, message) pairs; an empty message is the
  // official `None` (the role alone, the slot the model completes).
  std::string render(const std::string& system_message,
                     const std::vector<std::pair<std::string, std::string>>& messages) const;
  // chat()'s end-of-turn token: `template.sep.strip()` (e.g. "<|im_end|>"); generation stops on
  // its id and the response is cut at its first occurrence.
  std::string eos_token() const;
};

// get_conv_template(name); throws InvalidArgument for an unknown name.
const ConversationTemplate& get_conversation_template(const std::string& name);
std::vector<std::string> conversation_template_names();

// The image placeholder strings of InternVLChatModel.chat().
struct ImageTokenStrings {
  std::string placeholder = "<image>";
  std::string start = "<img>";
  std::string context = "<IMG_CONTEXT>";
  std::string end = "</img>";
};

struct ChatTurn {
  std::string question;
  std::string answer;
};

// Inputs of one InternVLChatModel.chat() call.
struct ChatPromptRequest {
  std::string question;
  // nullopt reproduces the official `history=None` (the only case where "<image>\n" may be
  // prepended to the question); an empty vector is `history=[]`.
  std::optional<std::vector<ChatTurn>> history;
  // Tiles per image (num_patches_list); empty when there is no image.
  std::vector<int64_t> num_patches_list;
};

// (image_size / patch_size)^2 * downsample_ratio^2, truncated like the official int(...).
int64_t num_image_tokens(int64_t image_size, int64_t patch_size, double downsample_ratio);

// InternVLChatModel.chat() up to the tokenizer call: prepends "<image>\n" when history is None,
// an image is given and the question has none; renders the template with `system_message`; then
// replaces, for each entry of num_patches_list in order, the first remaining "<image>" by
// "<img>" + "<IMG_CONTEXT>" * (num_image_token * tiles) + "</img>".
std::string build_chat_prompt(const ConversationTemplate& conversation, const std::string& system_message,
                              const ChatPromptRequest& request, int64_t num_image_token,
                              const ImageTokenStrings& image_tokens = {});

// chat()'s post-processing of the decoded generation: `response.split(eos_token)[0].strip()`.
std::string extract_response(const ConversationTemplate& conversation, const std::string& decoded);

}  // namespace internvl::tokenizer
