// Reproduces transformers 4.37 slow tokenizers (PreTrainedTokenizer.tokenize / _decode,
// LlamaTokenizer, and the official InternLM2Tokenizer of tokenization_internlm2.py) on top of the
// SentencePiece C++ library.
#include "tokenizer/sentencepiece_tokenizer.h"

#include <algorithm>
#include <unordered_set>

#include "common/check.h"
#include "tokenizer/text_util.h"

namespace internvl::tokenizer {

namespace {

using json = nlohmann::json;

constexpr std::string_view kSpieceUnderline = "\xE2\x96\x81";  // '▁' (U+2581)

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

SentencePieceTokenizer::SentencePieceTokenizer(const std::string& dir, const TokenizerConfigFiles& files,
                                               const TokenizerOptions& options) {
  dir_ = dir;
  const std::string model_path = dir + "/tokenizer.model";
  const json& config = files.config;
  const std::string& config_path = files.config_path;

  INTERNVL_CHECK(file_exists(model_path), ConfigError, model_path,
                 ": not found (a SentencePiece tokenizer.model is required)");

  // ---- the class ------------------------------------------------------------------------------
  const std::string cls = tokenizer_class(config, config_path);
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
                   "' (supported: LlamaTokenizer, InternLM2Tokenizer, Qwen2Tokenizer)");
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

  // ---- added and special tokens (class defaults: the __init__ signatures) ---------------------
  ClassDefaults defaults;
  defaults.specials = {{"unk_token", "<unk>"}, {"bos_token", "<s>"}, {"eos_token", "</s>"}};
  if (!is_llama) defaults.specials.emplace_back("pad_token", "</s>");
  defaults.wrap_string_specials = is_llama;
  BaseVocabulary base;
  {
    std::unordered_set<std::string> names;
    for (int64_t i = 0; i < sp_size_; ++i) names.insert(sp_.IdToPiece(static_cast<int>(i)));
    base.distinct_size = static_cast<int64_t>(names.size());
  }
  base.find = [this](const std::string& token) -> std::optional<int64_t> {
    if (is_sp_piece(token)) return sp_.PieceToId(token);
    return std::nullopt;
  };
  base.to_id = [this](const std::string& token) -> int64_t { return sp_.PieceToId(token); };
  added_.load(files, defaults, base);

  add_bos_ = options.add_bos_token.value_or(json_bool(config, "add_bos_token", true, config_path));
  add_eos_ = options.add_eos_token.value_or(json_bool(config, "add_eos_token", false, config_path));
  clean_up_spaces_ = json_bool(config, "clean_up_tokenization_spaces", false, config_path);

  if (flavour_ == TokenizerFlavour::kLlama) {
    std::vector<std::string> pieces;
    sp_.Encode(added_.unk.present ? added_.unk.content : std::string("<unk>"), &pieces);
    unk_token_length_ = pieces.size();
  }
}

int64_t SentencePieceTokenizer::bos_id() const {
  return flavour_ == TokenizerFlavour::kInternLM2 ? sp_.bos_id() : added_.special_id(added_.bos);
}
int64_t SentencePieceTokenizer::eos_id() const {
  return flavour_ == TokenizerFlavour::kInternLM2 ? sp_.eos_id() : added_.special_id(added_.eos);
}

bool SentencePieceTokenizer::is_byte_piece(const std::string& piece) const {
  if (added_.is_added(piece)) return false;
  return byte_piece_value(piece) >= 0 && sp_.IsByte(sp_.PieceToId(piece));
}

bool SentencePieceTokenizer::can_checkpoint_after(const std::string& last) const {
  // An ordinary piece with visible text: no byte run or special-token group crosses the cut, and
  // SentencePiece's leading-space rule is settled after it.
  if (added_.is_added(last) || !is_sp_piece(last)) return false;
  const int id = sp_.PieceToId(last);
  return !(sp_.IsByte(id) || sp_.IsControl(id) || sp_.IsUnknown(id) || last == kSpieceUnderline);
}

bool SentencePieceTokenizer::is_sp_piece(std::string_view token) const {
  const int id = sp_.PieceToId(token);
  return id != sp_.unk_id() || sp_.IdToPiece(id) == token;
}

int64_t SentencePieceTokenizer::token_to_id(std::string_view token) const {
  if (auto it = added_.encoder.find(std::string(token)); it != added_.encoder.end()) return it->second;
  return sp_.PieceToId(token);
}

std::optional<int64_t> SentencePieceTokenizer::find_token(std::string_view token) const {
  if (auto it = added_.encoder.find(std::string(token)); it != added_.encoder.end()) return it->second;
  if (is_sp_piece(token)) return sp_.PieceToId(token);
  return std::nullopt;
}

std::vector<std::string> SentencePieceTokenizer::sp_tokenize(std::string_view text) const {
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
  std::string with_unk = (added_.unk.present ? added_.unk.content : std::string("<unk>")) + std::string(text);
  sp_.Encode(with_unk, &pieces);
  if (pieces.size() >= unk_token_length_) pieces.erase(pieces.begin(), pieces.begin() + unk_token_length_);
  return pieces;
}

std::vector<std::string> SentencePieceTokenizer::base_tokenize(std::string_view text) const {
  std::vector<std::string> out;
  for (auto& token : added_.split(text)) {
    if (added_.is_added(token)) {
      out.push_back(std::move(token));
    } else {
      auto pieces = sp_tokenize(token);
      out.insert(out.end(), std::make_move_iterator(pieces.begin()), std::make_move_iterator(pieces.end()));
    }
  }
  return out;
}

std::vector<std::string> SentencePieceTokenizer::tokenize(std::string_view text) const {
  if (flavour_ != TokenizerFlavour::kLlama || text.empty()) return base_tokenize(text);
  // LlamaTokenizer.tokenize (legacy=false): one '▁' in front of the whole text.
  std::string prefixed(kSpieceUnderline);
  prefixed += python_replace(text, kSpieceUnderline, " ");
  std::vector<std::string> tokens = base_tokenize(prefixed);
  if (tokens.size() > 1 && tokens[0] == kSpieceUnderline && added_.all_special_set.count(tokens[1]))
    tokens.erase(tokens.begin());
  return tokens;
}

std::vector<int64_t> SentencePieceTokenizer::encode(std::string_view text, bool add_special_tokens) const {
  INTERNVL_CHECK(is_valid_utf8(text), InvalidArgument, "Tokenizer::encode: the text is not valid UTF-8");
  std::vector<int64_t> ids;
  const auto tokens = tokenize(text);
  ids.reserve(tokens.size() + 2);
  if (add_special_tokens && add_bos_ && bos_id() >= 0) ids.push_back(bos_id());
  for (const auto& token : tokens) ids.push_back(token_to_id(token));
  if (add_special_tokens && add_eos_ && eos_id() >= 0) ids.push_back(eos_id());
  return ids;
}

void SentencePieceTokenizer::check_id(int64_t id) const {
  INTERNVL_CHECK(id >= 0 && (id < sp_size_ || added_.decoder.count(id) != 0), InvalidArgument, "token id ", id,
                 " is out of range (vocabulary size ", added_.vocab_size, ")");
}

std::string SentencePieceTokenizer::id_to_token(int64_t id) const {
  check_id(id);
  if (auto it = added_.decoder.find(id); it != added_.decoder.end()) return it->second.content;
  return sp_.IdToPiece(static_cast<int>(id));
}

std::string SentencePieceTokenizer::sp_decode(const std::vector<std::string>& pieces) const {
  std::string text;
  if (pieces.empty()) return text;
  const auto status = sp_.Decode(pieces, &text);
  INTERNVL_CHECK(status.ok(), InvalidArgument, "SentencePiece decode failed: ", status.ToString());
  return text;
}

std::string SentencePieceTokenizer::convert_tokens_to_string(std::vector<std::string> tokens, bool raw) const {
  std::string out;
  std::vector<std::string> current;
  bool prev_is_special = false;
  if (flavour_ == TokenizerFlavour::kInternLM2) {
    // InternLM2Tokenizer.convert_tokens_to_string. Its _maybe_add_prefix_space always adds ' '
    // (it looks a token string up in a set of ids) and the final [1:] removes it again.
    for (const auto& token : tokens) {
      if (added_.all_special_set.count(token)) {
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
    if (added_.all_special_set.count(tokens[i])) {
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
std::string SentencePieceTokenizer::decode_tokens(const std::vector<std::string>& tokens, const DecodeOptions& options) const {
  std::vector<std::string> sub_texts;
  std::vector<std::string> current;
  for (const auto& token : tokens) {
    if (added_.legacy.count(token)) {
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
    if (i > 0 && options.spaces_between_special_tokens.value_or(true)) text += ' ';
    text += sub_texts[i];
  }
  if (options.clean_up_tokenization_spaces.value_or(clean_up_spaces_)) text = clean_up_tokenization(text);
  return text;
}

size_t SentencePieceTokenizer::stable_length(const std::vector<std::string>& tokens, const std::string& text,
                                             const DecodeOptions& options_) const {
  const SentencePieceTokenizer& impl = *this;
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
    return impl.added_.all_special_set.count(token) != 0 || impl.added_.legacy.count(token) != 0;
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
        if (impl.added_.legacy.count(tokens[i])) {
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

}  // namespace internvl::tokenizer
