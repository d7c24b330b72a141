// Reproduces transformers 4.37 slow tokenizers (PreTrainedTokenizer.tokenize / _decode,
// LlamaTokenizer, and the official InternLM2Tokenizer of tokenization_internlm2.py) on top of the
// SentencePiece C++ library (the same 0.1.97 the fixtures were made with).
#include "tokenizer/tokenizer.h"

#include <sentencepiece_processor.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "common/check.h"
#include "tokenizer/text_util.h"

namespace internvl::tokenizer {

namespace {

using json = nlohmann::json;

constexpr std::string_view kSpieceUnderline = "\xE2\x96\x81";  // '▁' (U+2581)

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

// Reads a JSON object file; a missing file gives an empty object.
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

// Reads a varint at data[*pos]; false when truncated or too long.
bool read_varint(std::string_view data, size_t* pos, uint64_t* value) {
  *value = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (*pos >= data.size()) return false;
    const auto byte = static_cast<unsigned char>(data[(*pos)++]);
    *value |= static_cast<uint64_t>(byte & 0x7F) << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

// Checks that `data` is a well-formed sequence of protobuf fields (wire types 0, 1, 2, 5).
bool is_wellformed_proto(std::string_view data) {
  size_t pos = 0;
  while (pos < data.size()) {
    uint64_t tag = 0, value = 0;
    if (!read_varint(data, &pos, &tag) || (tag >> 3) == 0) return false;
    switch (tag & 7) {
      case 0:
        if (!read_varint(data, &pos, &value)) return false;
        break;
      case 1:
        if (data.size() - pos < 8) return false;
        pos += 8;
        break;
      case 2:
        if (!read_varint(data, &pos, &value) || value > data.size() - pos) return false;
        pos += value;
        break;
      case 5:
        if (data.size() - pos < 4) return false;
        pos += 4;
        break;
      default:
        return false;
    }
  }
  return true;
}

// LlamaTokenizer.get_spm_processor for legacy=false: the model with
// `normalizer_spec.add_dummy_prefix = False` merged in. Appending another occurrence of the
// embedded message field ModelProto.normalizer_spec (field 3) holding only
// NormalizerSpec.add_dummy_prefix (field 3, varint 0) is exactly a protobuf MergeFrom.
std::string without_dummy_prefix(const std::string& serialized) {
  std::string patched = serialized;
  patched.append("\x1a\x02\x18\x00", 4);
  return patched;
}

struct SpecialValue {
  bool present = false;
  std::string content;
  bool is_object = false;  // an AddedToken (dict) rather than a plain string
  AddedToken token;
};

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

bool json_bool(const json& config, const char* key, bool fallback, const std::string& source) {
  if (!config.contains(key) || config[key].is_null()) return fallback;
  INTERNVL_CHECK(config[key].is_boolean(), ConfigError, source, ": '", key, "' must be a boolean");
  return config[key].get<bool>();
}

// The byte value of a "<0xNN>" piece, or -1.
int byte_piece_value(std::string_view piece) {
  if (piece.size() != 6 || piece.substr(0, 3) != "<0x" || piece[5] != '>') return -1;
  int value = 0;
  for (size_t i = 3; i < 5; ++i) {
    const char c = piece[i];
    value *= 16;
    if (c >= '0' && c <= '9') value += c - '0';
    else if (c >= 'A' && c <= 'F') value += c - 'A' + 10;
    else return -1;
  }
  return value;
}


}  // namespace

const char* to_string(TokenizerFlavour flavour) {
  switch (flavour) {
    case TokenizerFlavour::kLlamaLegacy: return "LlamaTokenizer(legacy=true)";
    case TokenizerFlavour::kLlama: return "LlamaTokenizer(legacy=false)";
    case TokenizerFlavour::kInternLM2: return "InternLM2Tokenizer";
    default: return "auto";
  }
}

class Tokenizer::Impl {
 public:
  Impl(const std::string& dir, const TokenizerOptions& options);

  // ---- encoding -------------------------------------------------------------------------------
  std::vector<std::string> split_on_added_tokens(std::string_view text) const;
  std::vector<std::string> base_tokenize(std::string_view text) const;  // PreTrainedTokenizer.tokenize
  std::vector<std::string> sp_tokenize(std::string_view text) const;    // the class's _tokenize
  std::vector<std::string> tokenize(std::string_view text) const;       // the class's tokenize
  std::vector<int64_t> encode(std::string_view text, bool add_special_tokens) const;

  // ---- decoding -------------------------------------------------------------------------------
  void check_id(int64_t id) const;
  bool is_skipped(int64_t id, const DecodeOptions& options) const;
  std::string id_to_token(int64_t id) const;
  std::string sp_decode(const std::vector<std::string>& pieces) const;
  // `raw`: skip InternLM2Tokenizer's clean_up_tokenization (for the stream decoder).
  std::string convert_tokens_to_string(std::vector<std::string> tokens, bool raw = false) const;
  std::string decode_tokens(const std::vector<std::string>& tokens, const DecodeOptions& options) const;
  bool cleans_up(const DecodeOptions& options) const {
    return flavour_ == TokenizerFlavour::kInternLM2 || options.clean_up_tokenization_spaces.value_or(clean_up_spaces_);
  }
  bool is_byte_piece(const std::string& piece) const {
    if (added_encoder_.count(piece) != 0) return false;
    return byte_piece_value(piece) >= 0 && sp_.IsByte(sp_.PieceToId(piece));
  }

  int64_t token_to_id(std::string_view token) const;
  std::optional<int64_t> find_token(std::string_view token) const;
  bool is_sp_piece(std::string_view token) const;
  int64_t special_id(const SpecialValue& value) const { return value.present ? token_to_id(value.content) : -1; }
  // bos_token_id / eos_token_id: InternLM2Tokenizer takes them from the SentencePiece model.
  int64_t bos_id() const { return flavour_ == TokenizerFlavour::kInternLM2 ? sp_.bos_id() : special_id(bos_); }
  int64_t eos_id() const { return flavour_ == TokenizerFlavour::kInternLM2 ? sp_.eos_id() : special_id(eos_); }

  std::string dir_;
  TokenizerFlavour flavour_ = TokenizerFlavour::kLlamaLegacy;
  sentencepiece::SentencePieceProcessor sp_;
  int64_t sp_size_ = 0;
  int64_t vocab_size_ = 0;
  size_t unk_token_length_ = 0;  // LlamaTokenizer.unk_token_length (legacy=false)

  std::map<int64_t, AddedToken> added_decoder_;
  std::unordered_map<std::string, int64_t> added_encoder_;
  // Split candidates by first byte, longest first (leftmost-longest like transformers' Trie).
  std::array<std::vector<std::string>, 256> split_candidates_;

  SpecialValue bos_, eos_, unk_, pad_;
  std::vector<std::string> all_special_tokens_;
  std::unordered_set<std::string> all_special_set_;
  std::unordered_set<int64_t> all_special_ids_;
  std::unordered_set<std::string> legacy_added_tokens_;  // _decode's `legacy_added_tokens`

  bool add_bos_ = true;
  bool add_eos_ = false;
  bool clean_up_spaces_ = false;
};

Tokenizer::Impl::Impl(const std::string& dir, const TokenizerOptions& options) : dir_(dir) {
  const std::string model_path = dir + "/tokenizer.model";
  const std::string config_path = dir + "/tokenizer_config.json";
  const std::string map_path = dir + "/special_tokens_map.json";
  const std::string added_path = dir + "/added_tokens.json";

  INTERNVL_CHECK(file_exists(model_path), ConfigError, model_path,
                 ": not found (a SentencePiece tokenizer.model is required)");
  const json config = read_json_object(config_path);
  const json special_map = read_json_object(map_path);
  const json added_json = read_json_object(added_path);

  // ---- the class ------------------------------------------------------------------------------
  std::string cls;
  if (config.contains("tokenizer_class") && !config["tokenizer_class"].is_null()) {
    INTERNVL_CHECK(config["tokenizer_class"].is_string(), ConfigError, config_path,
                   ": 'tokenizer_class' must be a string");
    cls = config["tokenizer_class"].get<std::string>();
  }
  bool auto_map_internlm2 = false;
  if (config.contains("auto_map") && config["auto_map"].is_object() && config["auto_map"].contains("AutoTokenizer")) {
    const auto& entry = config["auto_map"]["AutoTokenizer"];
    const auto mentions = [](const json& v) {
      return v.is_string() && v.get<std::string>().find("InternLM2Tokenizer") != std::string::npos;
    };
    auto_map_internlm2 = mentions(entry) || (entry.is_array() && !entry.empty() && mentions(entry[0]));
  }
  const bool legacy = json_bool(config, "legacy", true, config_path);
  TokenizerFlavour detected;
  if (cls.rfind("InternLM2Tokenizer", 0) == 0 || (cls.empty() && auto_map_internlm2)) {
    detected = TokenizerFlavour::kInternLM2;
  } else if (cls.empty() || cls.rfind("LlamaTokenizer", 0) == 0) {
    detected = legacy ? TokenizerFlavour::kLlamaLegacy : TokenizerFlavour::kLlama;
  } else {
    INTERNVL_THROW(ConfigError, config_path, ": unsupported tokenizer_class '", cls,
                   "' (supported: LlamaTokenizer, InternLM2Tokenizer)");
  }
  flavour_ = options.flavour == TokenizerFlavour::kAuto ? detected : options.flavour;
  const bool is_llama = flavour_ != TokenizerFlavour::kInternLM2;

  // ---- SentencePiece --------------------------------------------------------------------------
  std::string serialized = read_file(model_path);
  INTERNVL_CHECK(!serialized.empty() && is_wellformed_proto(serialized), ConfigError, model_path,
                 ": not a SentencePiece model (malformed protobuf)");
  if (flavour_ == TokenizerFlavour::kLlama) serialized = without_dummy_prefix(serialized);
  const auto status = sp_.LoadFromSerializedProto(serialized);
  INTERNVL_CHECK(status.ok(), ConfigError, model_path, ": not a valid SentencePiece model (", status.ToString(),
                 ")");
  sp_size_ = sp_.GetPieceSize();
  INTERNVL_CHECK(sp_size_ > 0, ConfigError, model_path, ": the SentencePiece model has no pieces");

  // ---- special tokens (PreTrainedTokenizerBase._from_pretrained) ------------------------------
  const bool has_decoder = config.contains("added_tokens_decoder");
  std::map<std::string, SpecialValue> specials;
  const char* const kSpecialKeys[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                      "pad_token", "cls_token", "mask_token"};
  // Class defaults (LlamaTokenizer / InternLM2Tokenizer __init__ signatures).
  specials["unk_token"] = special_from_json("<unk>", config_path, "unk_token");
  specials["bos_token"] = special_from_json("<s>", config_path, "bos_token");
  specials["eos_token"] = special_from_json("</s>", config_path, "eos_token");
  if (!is_llama) specials["pad_token"] = special_from_json("</s>", config_path, "pad_token");
  for (const char* key : kSpecialKeys) {
    if (config.contains(key)) specials[key] = special_from_json(config[key], config_path, key);
  }
  std::vector<SpecialValue> additional;
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
    const auto& decoder = config["added_tokens_decoder"];
    INTERNVL_CHECK(decoder.is_object(), ConfigError, config_path, ": 'added_tokens_decoder' must be an object");
    for (const auto& [key, value] : decoder.items()) {
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
      added_decoder_[id] = added_token_from_json(value, config_path, "added_tokens_decoder[" + key + "]");
    }
  } else {
    // Legacy checkpoints: special_tokens_map.json overrides, added_tokens.json lists extra tokens.
    for (const auto& [key, value] : special_map.items()) {
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
    for (const auto& [content, id_value] : added_json.items()) {
      INTERNVL_CHECK(id_value.is_number_integer() && id_value.get<int64_t>() >= 0, ConfigError, added_path,
                     ": the id of '", content, "' must be a non-negative integer");
      AddedToken token;
      token.content = content;
      token.special = special_strings.count(content) != 0;
      token.normalized = !token.special;
      added_decoder_[id_value.get<int64_t>()] = token;
    }
  }
  // LlamaTokenizer.__init__ turns string bos/eos/unk/pad into AddedToken(normalized=False).
  if (is_llama) {
    for (const char* key : {"bos_token", "eos_token", "unk_token", "pad_token"}) {
      auto it = specials.find(key);
      if (it != specials.end() && it->second.present && !it->second.is_object) {
        it->second.is_object = true;
        it->second.token = AddedToken{it->second.content, false, false, false, false, true};
      }
    }
  }
  for (const auto& [id, token] : added_decoder_) added_encoder_[token.content] = id;

  // PreTrainedTokenizer.__init__: _add_tokens(all_special_tokens_extended, special_tokens=True).
  std::vector<SpecialValue> extended;
  for (const char* key : kSpecialKeys) {
    auto it = specials.find(key);
    if (it != specials.end() && it->second.present) extended.push_back(it->second);
  }
  extended.insert(extended.end(), additional.begin(), additional.end());
  {
    // current_vocab = get_vocab(): SentencePiece pieces, then the added tokens on top.
    int64_t new_index = 0;
    {
      std::unordered_set<std::string> names;
      for (int64_t i = 0; i < sp_size_; ++i) names.insert(sp_.IdToPiece(static_cast<int>(i)));
      for (const auto& [content, id] : added_encoder_) names.insert(content);
      new_index = static_cast<int64_t>(names.size());
    }
    std::unordered_map<std::string, int64_t> fresh;  // contents added by this loop
    for (const auto& value : extended) {
      if (value.content.empty()) continue;
      if (!value.is_object && added_encoder_.count(value.content)) continue;
      AddedToken token = value.is_object ? value.token : AddedToken{value.content, false, false, false, false, true};
      token.special = true;
      int64_t index;
      if (auto f = fresh.find(token.content); f != fresh.end()) {
        index = f->second;
      } else if (auto e = added_encoder_.find(token.content); e != added_encoder_.end()) {
        index = e->second;
      } else if (is_sp_piece(token.content)) {
        index = sp_.PieceToId(token.content);
      } else {
        index = new_index++;
        fresh[token.content] = index;
      }
      added_decoder_[index] = token;
      added_encoder_[token.content] = index;
    }
  }

  // Split candidates: every added token (PreTrainedTokenizer._update_trie).
  for (const auto& [id, token] : added_decoder_) {
    if (token.content.empty()) continue;
    auto& bucket = split_candidates_[static_cast<unsigned char>(token.content[0])];
    if (std::find(bucket.begin(), bucket.end(), token.content) == bucket.end()) bucket.push_back(token.content);
  }
  for (auto& bucket : split_candidates_)
    std::stable_sort(bucket.begin(), bucket.end(),
                     [](const std::string& a, const std::string& b) { return a.size() > b.size(); });

  bos_ = specials["bos_token"];
  eos_ = specials["eos_token"];
  unk_ = specials["unk_token"];
  pad_ = specials["pad_token"];
  for (const auto& value : extended) {
    if (all_special_set_.insert(value.content).second) all_special_tokens_.push_back(value.content);
  }
  for (const auto& token : all_special_tokens_) all_special_ids_.insert(token_to_id(token));
  // len(tokenizer) = len(get_vocab()).
  {
    std::unordered_set<std::string> names;
    for (int64_t i = 0; i < sp_size_; ++i) names.insert(sp_.IdToPiece(static_cast<int>(i)));
    for (const auto& [content, id] : added_encoder_) names.insert(content);
    vocab_size_ = static_cast<int64_t>(names.size());
  }
  // legacy_added_tokens = (added tokens that are not special) | (additional special tokens
  // whose id is beyond the SentencePiece vocabulary).
  for (const auto& [content, id] : added_encoder_)
    if (!all_special_set_.count(content)) legacy_added_tokens_.insert(content);
  for (const auto& value : additional)
    if (token_to_id(value.content) >= sp_size_) legacy_added_tokens_.insert(value.content);

  add_bos_ = options.add_bos_token.value_or(json_bool(config, "add_bos_token", true, config_path));
  add_eos_ = options.add_eos_token.value_or(json_bool(config, "add_eos_token", false, config_path));
  clean_up_spaces_ = json_bool(config, "clean_up_tokenization_spaces", false, config_path);

  if (flavour_ == TokenizerFlavour::kLlama) {
    std::vector<std::string> pieces;
    sp_.Encode(unk_.present ? unk_.content : std::string("<unk>"), &pieces);
    unk_token_length_ = pieces.size();
  }
}

bool Tokenizer::Impl::is_sp_piece(std::string_view token) const {
  const int id = sp_.PieceToId(token);
  return id != sp_.unk_id() || sp_.IdToPiece(id) == token;
}

int64_t Tokenizer::Impl::token_to_id(std::string_view token) const {
  if (auto it = added_encoder_.find(std::string(token)); it != added_encoder_.end()) return it->second;
  return sp_.PieceToId(token);
}

std::optional<int64_t> Tokenizer::Impl::find_token(std::string_view token) const {
  if (auto it = added_encoder_.find(std::string(token)); it != added_encoder_.end()) return it->second;
  if (is_sp_piece(token)) return sp_.PieceToId(token);
  return std::nullopt;
}

// transformers' Trie.split: cut the text around added-token strings, leftmost match first and the
// longest one at that position.
std::vector<std::string> Tokenizer::Impl::split_on_added_tokens(std::string_view text) const {
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

std::vector<std::string> Tokenizer::Impl::sp_tokenize(std::string_view text) const {
  std::vector<std::string> pieces;
  if (flavour_ != TokenizerFlavour::kLlama) {
    sp_.Encode(text, &pieces);
    return pieces;
  }
  // LlamaTokenizer._tokenize (legacy=false; the model has no dummy prefix).
  const bool starts_with_space = text.substr(0, kSpieceUnderline.size()) == kSpieceUnderline ||
                                 (!text.empty() && text[0] == ' ');
  if (!starts_with_space) {
    sp_.Encode(text, &pieces);
    return pieces;
  }
  std::string with_unk = (unk_.present ? unk_.content : std::string("<unk>")) + std::string(text);
  sp_.Encode(with_unk, &pieces);
  if (pieces.size() >= unk_token_length_) pieces.erase(pieces.begin(), pieces.begin() + unk_token_length_);
  return pieces;
}

std::vector<std::string> Tokenizer::Impl::base_tokenize(std::string_view text) const {
  std::vector<std::string> tokens = split_on_added_tokens(text);
  // Whitespace handling of AddedToken flags (PreTrainedTokenizer.tokenize).
  for (size_t i = 0; i < tokens.size(); ++i) {
    auto it = added_encoder_.find(tokens[i]);
    if (it == added_encoder_.end()) continue;
    const AddedToken& token = added_decoder_.at(it->second);
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
  std::vector<std::string> out;
  for (const auto& token : tokens) {
    if (token.empty()) continue;
    if (added_encoder_.count(token)) {
      out.push_back(token);
    } else {
      auto pieces = sp_tokenize(token);
      out.insert(out.end(), std::make_move_iterator(pieces.begin()), std::make_move_iterator(pieces.end()));
    }
  }
  return out;
}

std::vector<std::string> Tokenizer::Impl::tokenize(std::string_view text) const {
  if (flavour_ != TokenizerFlavour::kLlama || text.empty()) return base_tokenize(text);
  // LlamaTokenizer.tokenize (legacy=false): one '▁' in front of the whole text.
  std::string prefixed(kSpieceUnderline);
  prefixed += python_replace(text, kSpieceUnderline, " ");
  std::vector<std::string> tokens = base_tokenize(prefixed);
  if (tokens.size() > 1 && tokens[0] == kSpieceUnderline && all_special_set_.count(tokens[1]))
    tokens.erase(tokens.begin());
  return tokens;
}

std::vector<int64_t> Tokenizer::Impl::encode(std::string_view text, bool add_special_tokens) const {
  INTERNVL_CHECK(is_valid_utf8(text), InvalidArgument, "Tokenizer::encode: the text is not valid UTF-8");
  std::vector<int64_t> ids;
  const auto tokens = tokenize(text);
  ids.reserve(tokens.size() + 2);
  if (add_special_tokens && add_bos_ && bos_id() >= 0) ids.push_back(bos_id());
  for (const auto& token : tokens) ids.push_back(token_to_id(token));
  if (add_special_tokens && add_eos_ && eos_id() >= 0) ids.push_back(eos_id());
  return ids;
}

void Tokenizer::Impl::check_id(int64_t id) const {
  INTERNVL_CHECK(id >= 0 && (id < sp_size_ || added_decoder_.count(id) != 0), InvalidArgument, "token id ", id,
                 " is out of range (vocabulary size ", vocab_size_, ")");
}

bool Tokenizer::Impl::is_skipped(int64_t id, const DecodeOptions& options) const {
  return options.skip_special_tokens && all_special_ids_.count(id) != 0;
}

std::string Tokenizer::Impl::id_to_token(int64_t id) const {
  check_id(id);
  if (auto it = added_decoder_.find(id); it != added_decoder_.end()) return it->second.content;
  return sp_.IdToPiece(static_cast<int>(id));
}

std::string Tokenizer::Impl::sp_decode(const std::vector<std::string>& pieces) const {
  std::string text;
  if (pieces.empty()) return text;
  const auto status = sp_.Decode(pieces, &text);
  INTERNVL_CHECK(status.ok(), InvalidArgument, "SentencePiece decode failed: ", status.ToString());
  return text;
}

std::string Tokenizer::Impl::convert_tokens_to_string(std::vector<std::string> tokens, bool raw) const {
  std::string out;
  std::vector<std::string> current;
  bool prev_is_special = false;
  if (flavour_ == TokenizerFlavour::kInternLM2) {
    // InternLM2Tokenizer.convert_tokens_to_string. Its _maybe_add_prefix_space always adds ' '
    // (it looks a token string up in a set of ids) and the final [1:] removes it again.
    for (const auto& token : tokens) {
      if (all_special_set_.count(token)) {
        if (!prev_is_special) out += ' ';
        out += sp_decode(current) + token;
        prev_is_special = true;
        current.clear();
      } else {
        current.push_back(token);
        prev_is_special = false;
      }
    }
    out += sp_decode(current);
    return raw ? out : clean_up_tokenization(out);
  }
  // LlamaTokenizer.convert_tokens_to_string.
  if (!tokens.empty() && tokens[0].compare(0, kSpieceUnderline.size(), kSpieceUnderline) == 0)
    tokens[0].erase(0, kSpieceUnderline.size());
  const bool legacy = flavour_ == TokenizerFlavour::kLlamaLegacy;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (all_special_set_.count(tokens[i])) {
      if (!prev_is_special && i != 0 && legacy) out += ' ';
      out += sp_decode(current) + tokens[i];
      prev_is_special = true;
      current.clear();
    } else {
      current.push_back(tokens[i]);
      prev_is_special = false;
    }
  }
  out += sp_decode(current);
  return out;
}

// PreTrainedTokenizer._decode after convert_ids_to_tokens.
std::string Tokenizer::Impl::decode_tokens(const std::vector<std::string>& tokens, const DecodeOptions& options) const {
  std::vector<std::string> sub_texts;
  std::vector<std::string> current;
  for (const auto& token : tokens) {
    if (legacy_added_tokens_.count(token)) {
      if (!current.empty()) {
        std::string text = convert_tokens_to_string(current);
        if (!text.empty()) sub_texts.push_back(std::move(text));
        current.clear();
      }
      sub_texts.push_back(token);
    } else {
      current.push_back(token);
    }
  }
  if (!current.empty()) sub_texts.push_back(convert_tokens_to_string(current));
  std::string text;
  for (size_t i = 0; i < sub_texts.size(); ++i) {
    if (i > 0 && options.spaces_between_special_tokens) text += ' ';
    text += sub_texts[i];
  }
  if (options.clean_up_tokenization_spaces.value_or(clean_up_spaces_)) text = clean_up_tokenization(text);
  return text;
}

// ---- Tokenizer ------------------------------------------------------------------------------

Tokenizer::Tokenizer(const std::string& dir, const TokenizerOptions& options)
    : impl_(std::make_unique<Impl>(dir, options)) {}
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

TokenizerFlavour Tokenizer::flavour() const { return impl_->flavour_; }
const std::string& Tokenizer::directory() const { return impl_->dir_; }

std::vector<std::string> Tokenizer::tokenize(std::string_view text) const {
  INTERNVL_CHECK(is_valid_utf8(text), InvalidArgument, "Tokenizer::tokenize: the text is not valid UTF-8");
  return impl_->tokenize(text);
}

std::vector<int64_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  return impl_->encode(text, add_special_tokens);
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids, const DecodeOptions& options) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (const int64_t id : ids) {
    impl_->check_id(id);
    if (!impl_->is_skipped(id, options)) tokens.push_back(impl_->id_to_token(id));
  }
  return impl_->decode_tokens(tokens, options);
}

RetrievalEncoding Tokenizer::encode_for_retrieval(std::string_view text, int64_t max_length,
                                                  std::string_view prefix) const {
  const Impl& impl = *impl_;
  const bool with_bos = impl.add_bos_ && impl.bos_id() >= 0;
  const bool with_eos = impl.eos_id() >= 0;
  const int64_t num_special = (with_bos ? 1 : 0) + (with_eos ? 1 : 0);
  INTERNVL_CHECK(max_length > num_special, InvalidArgument, "encode_for_retrieval: max_length ", max_length,
                 " leaves no room for text");
  INTERNVL_CHECK(is_valid_utf8(text) && is_valid_utf8(prefix), InvalidArgument,
                 "Tokenizer::encode_for_retrieval: the text is not valid UTF-8");
  std::string input(prefix);
  input += text;
  std::vector<int64_t> body = impl.encode(input, /*add_special_tokens=*/false);
  // truncation=True (longest_first on one sequence): drop pieces from the end.
  if (static_cast<int64_t>(body.size()) + num_special > max_length) body.resize(max_length - num_special);
  RetrievalEncoding out;
  out.input_ids.reserve(max_length);
  if (with_bos) out.input_ids.push_back(impl.bos_id());
  out.input_ids.insert(out.input_ids.end(), body.begin(), body.end());
  if (with_eos) out.input_ids.push_back(impl.eos_id());
  out.length = static_cast<int64_t>(out.input_ids.size());
  // pad_token = ' ': not a piece, so convert_tokens_to_ids gives the unk id.
  const int64_t pad = impl.token_to_id(" ");
  out.input_ids.resize(max_length, pad);
  return out;
}

int64_t Tokenizer::vocab_size() const { return impl_->vocab_size_; }
int64_t Tokenizer::sp_vocab_size() const { return impl_->sp_size_; }
std::string Tokenizer::id_to_piece(int64_t id) const { return impl_->id_to_token(id); }
int64_t Tokenizer::token_to_id(std::string_view token) const { return impl_->token_to_id(token); }
std::optional<int64_t> Tokenizer::find_token(std::string_view token) const { return impl_->find_token(token); }

int64_t Tokenizer::bos_id() const { return impl_->bos_id(); }
int64_t Tokenizer::eos_id() const { return impl_->eos_id(); }
int64_t Tokenizer::pad_id() const { return impl_->special_id(impl_->pad_); }
int64_t Tokenizer::unk_id() const { return impl_->special_id(impl_->unk_); }
const std::string& Tokenizer::bos_token() const { return impl_->bos_.content; }
const std::string& Tokenizer::eos_token() const { return impl_->eos_.content; }
const std::string& Tokenizer::pad_token() const { return impl_->pad_.content; }
const std::string& Tokenizer::unk_token() const { return impl_->unk_.content; }
const std::vector<std::string>& Tokenizer::special_tokens() const { return impl_->all_special_tokens_; }
bool Tokenizer::is_special_id(int64_t id) const { return impl_->all_special_ids_.count(id) != 0; }

std::vector<std::pair<int64_t, AddedToken>> Tokenizer::added_tokens() const {
  return {impl_->added_decoder_.begin(), impl_->added_decoder_.end()};
}

bool Tokenizer::add_bos_token() const { return impl_->add_bos_; }
bool Tokenizer::add_eos_token() const { return impl_->add_eos_; }
void Tokenizer::set_add_bos_token(bool value) { impl_->add_bos_ = value; }
void Tokenizer::set_add_eos_token(bool value) { impl_->add_eos_ = value; }

// ---- StreamDecoder --------------------------------------------------------------------------

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, const DecodeOptions& options)
    : impl_(tokenizer.impl_.get()), options_(options) {}

size_t StreamDecoder::stable_length(const std::vector<std::string>& tokens, const std::string& text) const {
  const Tokenizer::Impl& impl = *impl_;
  size_t stable = text.size();
  // (a) Trailing byte pieces that may still become a valid UTF-8 character are shown as one
  // U+FFFD each; hold them back until the character is complete or proven invalid.
  std::vector<int> bytes;
  for (auto it = tokens.rbegin(); it != tokens.rend() && bytes.size() < 4 && impl.is_byte_piece(*it); ++it)
    bytes.insert(bytes.begin(), byte_piece_value(*it));
  size_t pending = 0;
  for (size_t j = 0; j < bytes.size(); ++j) {
    const int b = bytes[j];
    const size_t need = b >= 0xF0 && b <= 0xF4 ? 4 : b >= 0xE0 && b <= 0xEF ? 3 : b >= 0xC2 && b <= 0xDF ? 2 : 0;
    if (need == 0) continue;
    const size_t have = bytes.size() - j;
    bool continuation = true;
    for (size_t k = j + 1; k < bytes.size(); ++k) continuation = continuation && (bytes[k] & 0xC0) == 0x80;
    if (continuation && have < need) {
      pending = have;
      break;
    }
  }
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  for (size_t i = 0; i < pending && stable >= kReplacement.size(); ++i) {
    if (std::string_view(text).substr(stable - kReplacement.size(), kReplacement.size()) != kReplacement) break;
    stable -= kReplacement.size();
  }
  // (b) InternLM2Tokenizer and legacy LlamaTokenizer put a ' ' in front of the text decoded since
  // the last special token once the next special token arrives (convert_tokens_to_string), so
  // with special tokens kept that text is final only after such a token.
  const bool spaces_before_specials =
      impl.flavour_ == TokenizerFlavour::kInternLM2 || impl.flavour_ == TokenizerFlavour::kLlamaLegacy;
  const auto is_boundary = [&](const std::string& token) {
    return impl.all_special_set_.count(token) != 0 || impl.legacy_added_tokens_.count(token) != 0;
  };
  if (spaces_before_specials && !options_.skip_special_tokens && !tokens.empty() && !is_boundary(tokens.back())) {
    size_t group_start = 0;  // tokens[group_start:] is the open group
    for (size_t i = tokens.size(); i-- > 0;) {
      if (is_boundary(tokens[i])) {
        group_start = i + 1;
        break;
      }
    }
    const std::string closed = impl.decode_tokens(
        std::vector<std::string>(tokens.begin(), tokens.begin() + static_cast<std::ptrdiff_t>(group_start)),
        options_);
    stable = std::min(stable, text.compare(0, closed.size(), closed) == 0 ? closed.size() : size_t{0});
  }
  // (c) clean_up_tokenization may still delete spaces near the end (" ." -> ".", " n't", ...):
  // only a prefix of the raw (not yet cleaned) text whose cleanup cannot interact with anything
  // appended later is final.
  const bool global_cleanup = options_.clean_up_tokenization_spaces.value_or(impl.clean_up_spaces_);
  if (impl.flavour_ == TokenizerFlavour::kInternLM2 || global_cleanup) {
    std::string raw;
    if (impl.flavour_ == TokenizerFlavour::kInternLM2 && global_cleanup) {
      return 0;  // two nested cleanups: keep everything until flush()
    } else if (impl.flavour_ == TokenizerFlavour::kInternLM2) {
      // The cleanup runs per convert_tokens_to_string call; the open one follows the last
      // legacy added token (earlier calls are final).
      size_t open_start = 0;
      for (size_t i = tokens.size(); i-- > 0;) {
        if (impl.legacy_added_tokens_.count(tokens[i])) {
          open_start = i + 1;
          break;
        }
      }
      if (open_start == tokens.size()) return stable;
      raw = impl.convert_tokens_to_string(
          std::vector<std::string>(tokens.begin() + static_cast<std::ptrdiff_t>(open_start), tokens.end()),
          /*raw=*/true);
    } else {
      DecodeOptions uncleaned = options_;
      uncleaned.clean_up_tokenization_spaces = false;
      raw = impl.decode_tokens(tokens, uncleaned);
    }
    const std::string cleaned = clean_up_tokenization(raw);
    if (cleaned.size() > text.size() || text.compare(text.size() - cleaned.size(), cleaned.size(), cleaned) != 0)
      return 0;
    const size_t closed = text.size() - cleaned.size();
    size_t cut = raw.size();
    for (size_t i = 0; i < pending && cut >= kReplacement.size(); ++i) {
      if (std::string_view(raw).substr(cut - kReplacement.size(), kReplacement.size()) != kReplacement) break;
      cut -= kReplacement.size();
    }
    while (cut > 0 && !clean_up_tokenization_is_final(std::string_view(raw).substr(0, cut))) --cut;
    const std::string final_part = clean_up_tokenization(std::string_view(raw).substr(0, cut));
    if (text.compare(closed, final_part.size(), final_part) != 0) return std::min(stable, closed);
    stable = std::min(stable, closed + final_part.size());
  }
  return stable;
}

std::string StreamDecoder::emit(const std::string& window_text, size_t stable) {
  // window_text = context_text_ + text of the tokens since the checkpoint.
  if (window_text.compare(0, context_text_.size(), context_text_) != 0) return {};
  const size_t done = emitted_.size() - checkpoint_emitted_;  // already returned, window coordinates
  const size_t begin = context_text_.size() + done;
  if (stable <= begin || window_text.compare(context_text_.size(), done, emitted_, checkpoint_emitted_, done) != 0)
    return {};
  std::string fresh = window_text.substr(begin, stable - begin);
  emitted_ += fresh;
  return fresh;
}

void StreamDecoder::maybe_checkpoint(const std::string& window_text, size_t stable) {
  constexpr size_t kContext = 8;       // tokens kept as left context
  constexpr size_t kMinWindow = 64;    // re-decode at most this many tokens before moving on
  if (window_.size() < kMinWindow || stable != window_text.size()) return;
  const Tokenizer::Impl& impl = *impl_;
  // The context must end with an ordinary piece with visible text: no byte run or special-token
  // group crosses the cut, and SentencePiece's leading-space rule is settled after it.
  const std::string& last = window_.back();
  if (impl.added_encoder_.count(last) != 0 || !impl.is_sp_piece(last)) return;
  const int id = impl.sp_.PieceToId(last);
  if (impl.sp_.IsByte(id) || impl.sp_.IsControl(id) || impl.sp_.IsUnknown(id) || last == kSpieceUnderline) return;
  std::vector<std::string> context(window_.end() - kContext, window_.end());
  std::string context_text = impl.decode_tokens(context, options_);
  if (context_text.empty() || stable_length(context, context_text) != context_text.size()) return;
  window_ = std::move(context);
  context_text_ = std::move(context_text);
  checkpoint_emitted_ = emitted_.size();
}

std::string StreamDecoder::push(int64_t id) {
  const Tokenizer::Impl& impl = *impl_;
  impl.check_id(id);
  ids_.push_back(id);
  if (impl.is_skipped(id, options_)) return {};
  window_.push_back(impl.id_to_token(id));
  const std::string text = impl.decode_tokens(window_, options_);
  const size_t stable = stable_length(window_, text);
  std::string fresh = emit(text, stable);
  maybe_checkpoint(text, stable);
  return fresh;
}

std::string StreamDecoder::push(const std::vector<int64_t>& ids) {
  std::string out;
  for (const int64_t id : ids) out += push(id);
  return out;
}

std::string StreamDecoder::flush() {
  const std::string text = impl_->decode_tokens(window_, options_);
  return emit(text, text.size());
}

void StreamDecoder::reset() {
  ids_.clear();
  window_.clear();
  context_text_.clear();
  checkpoint_emitted_ = 0;
  emitted_.clear();
}

}  // namespace internvl::tokenizer
