// Added and special tokens shared by every tokenizer backend: reading tokenizer_config.json /
// special_tokens_map.json / added_tokens.json the way PreTrainedTokenizerBase._from_pretrained and
// PreTrainedTokenizer.__init__ do (transformers 4.37 / 4.55), and PreTrainedTokenizer.tokenize's
// split of a text on the added-token strings (its Trie plus the AddedToken lstrip / rstrip /
// single_word flags).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace internvl::tokenizer {

bool file_exists(const std::string& path);
// The whole file; ConfigError naming the path when it cannot be read.
std::string read_file(const std::string& path);
// A JSON object file; a missing file gives an empty object. ConfigError naming the path otherwise.
nlohmann::json read_json_object(const std::string& path);
// config[key] as a boolean (fallback when absent or null).
bool json_bool(const nlohmann::json& config, const char* key, bool fallback, const std::string& source);
// tokenizer_config.json's `tokenizer_class` ("" when absent).
std::string tokenizer_class(const nlohmann::json& config, const std::string& source);

// A bos/eos/unk/... value: absent, a plain string or an AddedToken object.
struct SpecialValue {
  bool present = false;
  std::string content;
  bool is_object = false;  // an AddedToken (dict) rather than a plain string
  AddedToken token;
};

// The three optional JSON files next to the vocabulary.
struct TokenizerConfigFiles {
  std::string config_path, map_path, added_path;
  nlohmann::json config, special_map, added_json;
};
TokenizerConfigFiles read_config_files(const std::string& dir);

// What the tokenizer class's __init__ contributes.
struct ClassDefaults {
  // Default special tokens of the __init__ signature, e.g. {"unk_token", "<unk>"}.
  std::vector<std::pair<std::string, std::string>> specials;
  // LlamaTokenizer / Qwen2Tokenizer wrap string bos/eos/unk/pad into AddedToken(normalized=False).
  bool wrap_string_specials = false;
};

// The model's own vocabulary, as the added-token bookkeeping sees it.
struct BaseVocabulary {
  int64_t distinct_size = 0;                                        // distinct token strings
  std::function<std::optional<int64_t>(const std::string&)> find;  // exact token string
  std::function<int64_t(const std::string&)> to_id;                // _convert_token_to_id (unk fallback)
};

class AddedTokens {
 public:
  void load(const TokenizerConfigFiles& files, const ClassDefaults& defaults, const BaseVocabulary& base);

  // PreTrainedTokenizer.tokenize up to _tokenize: the text cut around added tokens (each an added
  // token's content, found in `encoder`) with the AddedToken whitespace flags applied; empty
  // pieces dropped.
  std::vector<std::string> split(std::string_view text) const;

  bool is_added(const std::string& token) const { return encoder.count(token) != 0; }
  std::optional<int64_t> find(std::string_view token) const;
  // convert_tokens_to_ids of a special value (-1 when absent).
  int64_t special_id(const SpecialValue& value) const { return value.present ? to_id_(value.content) : -1; }

  std::map<int64_t, AddedToken> decoder;             // added_tokens_decoder
  std::unordered_map<std::string, int64_t> encoder;  // added_tokens_encoder
  SpecialValue bos, eos, unk, pad;
  std::vector<SpecialValue> additional;              // additional_special_tokens
  std::vector<std::string> all_special_tokens;       // bos, eos, unk, sep, pad, cls, mask, additional
  std::unordered_set<std::string> all_special_set;
  std::unordered_set<int64_t> all_special_ids;
  // _decode's `legacy_added_tokens`: added tokens that are not special, plus additional special
  // tokens whose id is beyond the base vocabulary.
  std::unordered_set<std::string> legacy;
  int64_t vocab_size = 0;  // len(get_vocab()): base strings plus added ones beyond them

 private:
  std::function<int64_t(const std::string&)> to_id_;
  // Split candidates by first byte, longest first (leftmost-longest like transformers' Trie).
  std::array<std::vector<std::string>, 256> split_candidates_;
  std::vector<std::string> trie_split(std::string_view text) const;
};

}  // namespace internvl::tokenizer
