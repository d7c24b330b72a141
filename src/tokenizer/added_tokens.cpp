#include "tokenizer/added_tokens.h"

#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "common/check.h"
#include "tokenizer/text_util.h"

namespace internvl::tokenizer {

using json = nlohmann::json;

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  INTERNVL_CHECK(in.good(), ConfigError, path, ": cannot open the file");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  INTERNVL_CHECK(!in.bad(), ConfigError, path, ": read error");
  return buffer.str();
}

json read_json_object(const std::string& path) {
  if (!file_exists(path)) return json::object();
  json value;
  try {
    value = json::parse(read_file(path));
  } catch (const json::exception& e) {
    INTERNVL_THROW(ConfigError, path, ": malformed JSON (", e.what(), ")");
  }
  INTERNVL_CHECK(value.is_object(), ConfigError, path, ": expected a JSON object");
  return value;
}

bool json_bool(const json& config, const char* key, bool fallback, const std::string& source) {
  if (!config.contains(key) || config[key].is_null()) return fallback;
  INTERNVL_CHECK(config[key].is_boolean(), ConfigError, source, ": '", key, "' must be a boolean");
  return config[key].get<bool>();
}

std::string tokenizer_class(const json& config, const std::string& source) {
  if (!config.contains("tokenizer_class") || config["tokenizer_class"].is_null()) return {};
  INTERNVL_CHECK(config["tokenizer_class"].is_string(), ConfigError, source, ": 'tokenizer_class' must be a string");
  return config["tokenizer_class"].get<std::string>();
}

TokenizerConfigFiles read_config_files(const std::string& dir) {
  TokenizerConfigFiles files;
  files.config_path = dir + "/tokenizer_config.json";
  files.map_path = dir + "/special_tokens_map.json";
  files.added_path = dir + "/added_tokens.json";
  files.config = read_json_object(files.config_path);
  files.special_map = read_json_object(files.map_path);
  files.added_json = read_json_object(files.added_path);
  return files;
}

namespace {

AddedToken added_token_from_json(const json& value, const std::string& source, const std::string& what) {
  INTERNVL_CHECK(value.is_object() && value.contains("content") && value["content"].is_string(), ConfigError,
                 source, ": ", what, " must be a string or an object with a string 'content'");
  AddedToken token;
  token.content = value["content"].get<std::string>();
  const auto flag = [&](const char* key, bool fallback) {
    if (!value.contains(key) || value[key].is_null()) return fallback;
    INTERNVL_CHECK(value[key].is_boolean(), ConfigError, source, ": ", what, ".", key, " must be a boolean");
    return value[key].get<bool>();
  };
  token.lstrip = flag("lstrip", false);
  token.rstrip = flag("rstrip", false);
  token.single_word = flag("single_word", false);
  token.special = flag("special", false);
  token.normalized = flag("normalized", !token.special);
  return token;
}

SpecialValue special_from_json(const json& value, const std::string& source, const std::string& what) {
  SpecialValue out;
  if (value.is_null()) return out;
  out.present = true;
  if (value.is_string()) {
    out.content = value.get<std::string>();
    out.token.content = out.content;
    return out;
  }
  out.token = added_token_from_json(value, source, what);
  out.token.special = true;
  out.content = out.token.content;
  out.is_object = true;
  return out;
}

}  // namespace

void AddedTokens::load(const TokenizerConfigFiles& files, const ClassDefaults& defaults, const BaseVocabulary& base) {
  const json& config = files.config;
  const std::string& config_path = files.config_path;
  const std::string& map_path = files.map_path;
  const std::string& added_path = files.added_path;
  to_id_ = [this, to_base = base.to_id](const std::string& token) {
    if (auto it = encoder.find(token); it != encoder.end()) return it->second;
    return to_base(token);
  };

  // ---- special tokens (PreTrainedTokenizerBase._from_pretrained) ------------------------------
  const bool has_decoder = config.contains("added_tokens_decoder");
  std::map<std::string, SpecialValue> specials;
  const char* const kSpecialKeys[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                      "pad_token", "cls_token", "mask_token"};
  for (const auto& [key, value] : defaults.specials) specials[key] = special_from_json(value, config_path, key);
  for (const char* key : kSpecialKeys) {
    if (config.contains(key)) specials[key] = special_from_json(config[key], config_path, key);
  }
  const auto read_additional = [&](const json& list, const std::string& source) {
    INTERNVL_CHECK(list.is_null() || list.is_array(), ConfigError, source,
                   ": 'additional_special_tokens' must be a list");
    if (list.is_null()) return;
    for (const auto& item : list) {
      SpecialValue value = special_from_json(item, source, "additional_special_tokens[]");
      INTERNVL_CHECK(value.present, ConfigError, source, ": null in additional_special_tokens");
      const bool seen = std::any_of(additional.begin(), additional.end(),
                                    [&](const SpecialValue& v) { return v.content == value.content; });
      if (!seen) additional.push_back(std::move(value));
    }
  };
  if (config.contains("additional_special_tokens")) read_additional(config["additional_special_tokens"], config_path);

  if (has_decoder) {
    const auto& added_decoder = config["added_tokens_decoder"];
    INTERNVL_CHECK(added_decoder.is_object(), ConfigError, config_path, ": 'added_tokens_decoder' must be an object");
    for (const auto& [key, value] : added_decoder.items()) {
      int64_t id = -1;
      try {
        size_t used = 0;
        id = std::stoll(key, &used);
        if (used != key.size()) id = -1;
      } catch (const std::exception&) {
        id = -1;
      }
      INTERNVL_CHECK(id >= 0, ConfigError, config_path, ": added_tokens_decoder key '", key,
                     "' is not a token id");
      decoder[id] = added_token_from_json(value, config_path, "added_tokens_decoder[" + key + "]");
    }
  } else {
    // Legacy checkpoints: special_tokens_map.json overrides, added_tokens.json lists extra tokens.
    for (const auto& [key, value] : files.special_map.items()) {
      if (key == "additional_special_tokens") {
        read_additional(value, map_path);
      } else if (std::find(std::begin(kSpecialKeys), std::end(kSpecialKeys), key) != std::end(kSpecialKeys)) {
        specials[key] = special_from_json(value, map_path, key);
      }
    }
    std::unordered_set<std::string> special_strings;
    for (const auto& [key, value] : specials)
      if (value.present) special_strings.insert(value.content);
    for (const auto& value : additional) special_strings.insert(value.content);
    for (const auto& [content, id_value] : files.added_json.items()) {
      INTERNVL_CHECK(id_value.is_number_integer() && id_value.get<int64_t>() >= 0, ConfigError, added_path,
                     ": the id of '", content, "' must be a non-negative integer");
      AddedToken token;
      token.content = content;
      token.special = special_strings.count(content) != 0;
      token.normalized = !token.special;
      decoder[id_value.get<int64_t>()] = token;
    }
  }
  if (defaults.wrap_string_specials) {
    for (const char* key : {"bos_token", "eos_token", "unk_token", "pad_token"}) {
      auto it = specials.find(key);
      if (it != specials.end() && it->second.present && !it->second.is_object) {
        it->second.is_object = true;
        it->second.token = AddedToken{it->second.content, false, false, false, false, true};
      }
    }
  }
  for (const auto& [id, token] : decoder) encoder[token.content] = id;

  // get_vocab(): the base strings, then the added tokens on top.
  const auto vocab_names = [&] {
    int64_t names = base.distinct_size;
    for (const auto& [content, id] : encoder)
      if (!base.find(content)) ++names;
    return names;
  };

  // PreTrainedTokenizer.__init__: _add_tokens(all_special_tokens_extended, special_tokens=True).
  std::vector<SpecialValue> extended;
  for (const char* key : kSpecialKeys) {
    auto it = specials.find(key);
    if (it != specials.end() && it->second.present) extended.push_back(it->second);
  }
  extended.insert(extended.end(), additional.begin(), additional.end());
  {
    int64_t new_index = vocab_names();
    std::unordered_map<std::string, int64_t> fresh;  // contents added by this loop
    for (const auto& value : extended) {
      if (value.content.empty()) continue;
      if (!value.is_object && encoder.count(value.content)) continue;
      AddedToken token = value.is_object ? value.token : AddedToken{value.content, false, false, false, false, true};
      token.special = true;
      int64_t index;
      if (auto f = fresh.find(token.content); f != fresh.end()) {
        index = f->second;
      } else if (auto e = encoder.find(token.content); e != encoder.end()) {
        index = e->second;
      } else if (auto b = base.find(token.content)) {
        index = *b;
      } else {
        index = new_index++;
        fresh[token.content] = index;
      }
      decoder[index] = token;
      encoder[token.content] = index;
    }
  }

  // Split candidates: every added token (PreTrainedTokenizer._update_trie).
  for (const auto& [id, token] : decoder) {
    if (token.content.empty()) continue;
    auto& bucket = split_candidates_[static_cast<unsigned char>(token.content[0])];
    if (std::find(bucket.begin(), bucket.end(), token.content) == bucket.end()) bucket.push_back(token.content);
  }
  for (auto& bucket : split_candidates_)
    std::stable_sort(bucket.begin(), bucket.end(),
                     [](const std::string& a, const std::string& b) { return a.size() > b.size(); });

  bos = specials["bos_token"];
  eos = specials["eos_token"];
  unk = specials["unk_token"];
  pad = specials["pad_token"];
  for (const auto& value : extended) {
    if (all_special_set.insert(value.content).second) all_special_tokens.push_back(value.content);
  }
  for (const auto& token : all_special_tokens) all_special_ids.insert(to_id_(token));
  vocab_size = vocab_names();
  for (const auto& [content, id] : encoder)
    if (!all_special_set.count(content)) legacy.insert(content);
  for (const auto& value : additional)
    if (to_id_(value.content) >= base.distinct_size) legacy.insert(value.content);
}

std::optional<int64_t> AddedTokens::find(std::string_view token) const {
  if (auto it = encoder.find(std::string(token)); it != encoder.end()) return it->second;
  return std::nullopt;
}

// transformers' Trie.split: cut the text around added-token strings, leftmost match first and the
// longest one at that position.
std::vector<std::string> AddedTokens::trie_split(std::string_view text) const {
  std::vector<std::string> parts;
  size_t start = 0, pos = 0;
  while (pos < text.size()) {
    const auto& bucket = split_candidates_[static_cast<unsigned char>(text[pos])];
    const std::string* hit = nullptr;
    for (const auto& candidate : bucket) {
      if (text.compare(pos, candidate.size(), candidate) == 0) {
        hit = &candidate;
        break;
      }
    }
    if (hit == nullptr) {
      ++pos;
      continue;
    }
    if (pos > start) parts.emplace_back(text.substr(start, pos - start));
    parts.push_back(*hit);
    pos += hit->size();
    start = pos;
  }
  if (start < text.size()) parts.emplace_back(text.substr(start));
  return parts;
}

std::vector<std::string> AddedTokens::split(std::string_view text) const {
  std::vector<std::string> tokens = trie_split(text);
  // Whitespace handling of AddedToken flags (PreTrainedTokenizer.tokenize).
  for (size_t i = 0; i < tokens.size(); ++i) {
    auto it = encoder.find(tokens[i]);
    if (it == encoder.end()) continue;
    const AddedToken& token = decoder.at(it->second);
    const bool has_left = i > 0, has_right = i + 1 < tokens.size();
    if (token.rstrip && has_right && !tokens[i + 1].empty()) tokens[i + 1] = std::string(python_lstrip(tokens[i + 1]));
    if (token.lstrip && has_left && !tokens[i - 1].empty()) tokens[i - 1] = std::string(python_rstrip(tokens[i - 1]));
    if (token.single_word && has_left && !tokens[i - 1].empty() && tokens[i - 1].back() != ' ') {
      tokens[i - 1] += tokens[i];
      tokens[i].clear();
    } else if (token.single_word && has_right && !tokens[i + 1].empty() && tokens[i + 1].front() != ' ') {
      tokens[i + 1] = tokens[i] + tokens[i + 1];
      tokens[i].clear();
    }
  }
  tokens.erase(std::remove_if(tokens.begin(), tokens.end(), [](const std::string& t) { return t.empty(); }),
               tokens.end());
  return tokens;
}

}  // namespace internvl::tokenizer
