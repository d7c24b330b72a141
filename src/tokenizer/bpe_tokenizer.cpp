// Reproduces transformers' slow Qwen2Tokenizer (tokenization_qwen2.py) and the parts of
// PreTrainedTokenizer it runs (tokenize, _decode). PCRE2 runs the pre-tokenizer regex (the
// `regex` module in Python), utf8proc the NFC of unicodedata.
#include "tokenizer/bpe_tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "common/check.h"
#include "tokenizer/text_util.h"

namespace internvl::tokenizer {

namespace {

using json = nlohmann::json;

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
constexpr int32_t kNoRank = INT32_MAX;
constexpr int64_t kMaxTokenId = int64_t{1} << 24;  // keeps the id -> token table dense

// Python's `regex` \s for str patterns: the Unicode White_Space property. (PCRE2's \s with UCP
// also takes U+180E, so the class is spelled out.)
constexpr const char* kWhitespace =
    "\\t\\n\\x{0B}\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}";

// Qwen2Tokenizer's PRETOKENIZE_REGEX with \s / \S replaced by that class.
std::string pretokenizer_pattern() {
  const std::string ws = kWhitespace;
  return "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^" + ws + "\\p{L}\\p{N}]+[\\r\\n]*|[" +
         ws + "]*[\\r\\n]+|[" + ws + "]+(?![^" + ws + "])|[" + ws + "]+";
}

// GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the others for 256 + n.
std::array<char32_t, 256> bytes_to_unicode() {
  std::array<char32_t, 256> map{};
  std::array<bool, 256> kept{};
  for (int b = '!'; b <= '~'; ++b) kept[b] = true;
  for (int b = 0xA1; b <= 0xAC; ++b) kept[b] = true;
  for (int b = 0xAE; b <= 0xFF; ++b) kept[b] = true;
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) map[b] = kept[b] ? static_cast<char32_t>(b) : next++;
  return map;
}

void append_utf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Sequence length announced by a lead byte (0: never valid) and the range its second byte must
// fall in (RFC 3629: no overlong forms, surrogates or code points past U+10FFFF).
int utf8_sequence(unsigned char b, unsigned char* lo, unsigned char* hi) {
  *lo = 0x80;
  *hi = 0xBF;
  if (b < 0x80) return 1;
  if (b < 0xC2) return 0;
  if (b < 0xE0) return 2;
  if (b < 0xF0) {
    if (b == 0xE0) *lo = 0xA0;
    if (b == 0xED) *hi = 0x9F;
    return 3;
  }
  if (b < 0xF5) {
    if (b == 0xF0) *lo = 0x90;
    if (b == 0xF4) *hi = 0x8F;
    return 4;
  }
  return 0;
}

// How many bytes from `i` form a valid sequence (== its length) or its maximal valid prefix.
size_t utf8_prefix(std::string_view s, size_t i, size_t* need) {
  unsigned char lo, hi;
  const int n = utf8_sequence(static_cast<unsigned char>(s[i]), &lo, &hi);
  *need = static_cast<size_t>(n);
  if (n <= 1) return n == 1 ? 1 : 0;
  size_t k = 1;
  for (; k < static_cast<size_t>(n) && i + k < s.size(); ++k) {
    const auto c = static_cast<unsigned char>(s[i + k]);
    if (k == 1 ? (c < lo || c > hi) : (c & 0xC0) != 0x80) break;
  }
  return k;
}

// One code point of valid UTF-8 at s[*i].
char32_t next_code_point(std::string_view s, size_t* i) {
  const auto b = static_cast<unsigned char>(s[*i]);
  size_t len = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
  if (*i + len > s.size()) len = s.size() - *i;
  char32_t cp = len == 1 ? b : len == 2 ? (b & 0x1F) : len == 3 ? (b & 0x0F) : (b & 0x07);
  for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[*i + k]) & 0x3F);
  *i += len;
  return cp;
}

std::string_view strip_ascii(std::string_view s) {
  const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace

std::string decode_utf8_replace(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t i = 0;
  while (i < bytes.size()) {
    if (static_cast<unsigned char>(bytes[i]) < 0x80) {
      out.push_back(bytes[i++]);
      continue;
    }
    size_t need = 0;
    const size_t have = utf8_prefix(bytes, i, &need);
    if (need > 0 && have == need) {
      out.append(bytes.substr(i, need));
      i += need;
    } else {
      out.append(kReplacement);
      i += std::max<size_t>(have, 1);
    }
  }
  return out;
}

size_t incomplete_utf8_tail(std::string_view bytes) {
  const size_t n = bytes.size();
  for (size_t back = 1; back <= 4 && back <= n; ++back) {
    const size_t p = n - back;
    const auto b = static_cast<unsigned char>(bytes[p]);
    if ((b & 0xC0) == 0x80) continue;  // a continuation byte: look further left
    size_t need = 0;
    const size_t have = utf8_prefix(bytes, p, &need);
    return need > back && have == back ? back : 0;
  }
  return 0;
}

std::string nfc_normalize(std::string_view text) {
  // ASCII is NFC and no composition has an ASCII second character, so the text can be cut before
  // any ASCII character: only the non-ASCII runs (with the ASCII character in front, which a
  // combining mark may join) go through utf8proc.
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  const size_t n = text.size();
  while (i < n) {
    size_t j = i;
    while (j < n && static_cast<unsigned char>(text[j]) < 0x80) ++j;
    if (j == n) {
      out.append(text.substr(i));
      break;
    }
    const size_t start = j > i ? j - 1 : j;
    out.append(text.substr(i, start - i));
    size_t k = j;
    while (k < n && static_cast<unsigned char>(text[k]) >= 0x80) ++k;
    utf8proc_uint8_t* mapped = nullptr;
    const utf8proc_ssize_t len =
        utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data() + start),
                     static_cast<utf8proc_ssize_t>(k - start), &mapped,
                     static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
    if (len < 0) {
      std::free(mapped);
      INTERNVL_THROW(InvalidArgument, "NFC normalisation failed: ", utf8proc_errmsg(len));
    }
    out.append(reinterpret_cast<const char*>(mapped), static_cast<size_t>(len));
    std::free(mapped);
    i = k;
  }
  return out;
}

// ---- the pre-tokenizer regex --------------------------------------------------------------------

struct BpeTokenizer::Regex {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Regex() {
    if (code) pcre2_code_free(code);
  }
};

void BpeTokenizer::compile_pretokenizer() {
  regex_ = std::make_unique<Regex>();
  const std::string pattern = pretokenizer_pattern();
  int error = 0;
  PCRE2_SIZE offset = 0;
  regex_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.c_str()), pattern.size(),
                               PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
  if (regex_->code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    INTERNVL_THROW(InvalidArgument, "the pre-tokenizer regex does not compile at ", offset, ": ",
                   reinterpret_cast<const char*>(message));
  }
  regex_->jit = pcre2_jit_compile(regex_->code, PCRE2_JIT_COMPLETE) == 0;
}

// ---- loading ------------------------------------------------------------------------------------

BpeTokenizer::~BpeTokenizer() = default;

BpeTokenizer::BpeTokenizer(const std::string& dir, const TokenizerConfigFiles& files_in,
                           const TokenizerOptions& options) {
  dir_ = dir;
  TokenizerConfigFiles files = files_in;
  const std::string& config_path = files.config_path;
  const std::string cls = tokenizer_class(files.config, config_path);
  INTERNVL_CHECK(cls.empty() || cls == "Qwen2Tokenizer" || cls == "Qwen2TokenizerFast", ConfigError, config_path,
                 ": unsupported tokenizer_class '", cls, "' for a BPE vocabulary (supported: Qwen2Tokenizer)");

  const auto map = bytes_to_unicode();
  unicode_to_byte_.fill(-1);
  for (int b = 0; b < 256; ++b) unicode_to_byte_[map[b]] = static_cast<int16_t>(b);

  const std::string vocab_path = dir + "/vocab.json", merges_path = dir + "/merges.txt";
  const std::string json_path = dir + "/tokenizer.json";
  std::string vocabulary_source;
  if (file_exists(vocab_path) && file_exists(merges_path)) {
    load_vocab_json(vocab_path);
    finish_vocabulary(vocab_path);
    load_merges_txt(merges_path);
    vocabulary_source = vocab_path;
  } else {
    INTERNVL_CHECK(file_exists(json_path), ConfigError, dir,
                   ": no BPE vocabulary (vocab.json + merges.txt, or tokenizer.json)");
    json added_tokens;
    load_tokenizer_json(json_path, &added_tokens);
    vocabulary_source = json_path;
    // Without added_tokens_decoder in tokenizer_config.json the fast file's list is the truth.
    if (!files.config.contains("added_tokens_decoder") && added_tokens.is_array()) {
      json decoder = json::object();
      for (const auto& token : added_tokens) {
        INTERNVL_CHECK(token.is_object() && token.contains("id") && token["id"].is_number_integer(), ConfigError,
                       json_path, ": added_tokens entries need an integer 'id'");
        json entry = token;
        entry.erase("id");
        decoder[std::to_string(token["id"].get<int64_t>())] = entry;
      }
      files.config["added_tokens_decoder"] = decoder;
      files.config_path = json_path;  // errors in those entries name the file they came from
    }
  }

  // Qwen2Tokenizer.__init__: unk / eos / pad default to <|endoftext|>, no bos; string values
  // become AddedToken(special=True, normalized=False).
  ClassDefaults defaults;
  defaults.specials = {{"unk_token", "<|endoftext|>"}, {"eos_token", "<|endoftext|>"}, {"pad_token", "<|endoftext|>"}};
  defaults.wrap_string_specials = true;
  BaseVocabulary base;
  base.distinct_size = static_cast<int64_t>(encoder_.size());
  base.find = [this](const std::string& token) -> std::optional<int64_t> {
    if (auto it = encoder_.find(token); it != encoder_.end()) return it->second;
    return std::nullopt;
  };
  // _convert_token_to_id: encoder.get(token, encoder.get(unk_token)); -1 stands for None.
  base.to_id = [this](const std::string& token) -> int64_t {
    if (auto it = encoder_.find(token); it != encoder_.end()) return it->second;
    if (added_.unk.present) {
      if (auto it = encoder_.find(added_.unk.content); it != encoder_.end()) return it->second;
    }
    return -1;
  };
  added_.load(files, defaults, base);

  const json& config = files_in.config;
  add_bos_ = options.add_bos_token.value_or(false);  // Qwen2Tokenizer adds neither
  add_eos_ = options.add_eos_token.value_or(false);
  clean_up_spaces_ = json_bool(config, "clean_up_tokenization_spaces", false, config_path);
  if (config.contains("errors") && !config["errors"].is_null()) {
    INTERNVL_CHECK(config["errors"].is_string(), ConfigError, config_path, ": 'errors' must be a string");
    errors_ = config["errors"].get<std::string>();
    INTERNVL_CHECK(errors_ == "replace" || errors_ == "ignore" || errors_ == "strict", ConfigError, config_path,
                   ": unsupported 'errors' value '", errors_, "' (replace, ignore, strict)");
  }
  compile_pretokenizer();
}

namespace {

using VocabEntries = std::vector<std::pair<std::string, int64_t>>;

// The entries of a vocabulary object, checked: ids are integers in [0, kMaxTokenId).
VocabEntries vocab_entries(const json& vocab, const std::string& source) {
  INTERNVL_CHECK(vocab.is_object(), ConfigError, source, ": the vocabulary must be a JSON object {token: id}");
  VocabEntries entries;
  entries.reserve(vocab.size());
  for (const auto& [token, id] : vocab.items()) {
    INTERNVL_CHECK(id.is_number_integer() && id.get<int64_t>() >= 0 && id.get<int64_t>() < kMaxTokenId, ConfigError,
                   source, ": the id of '", token, "' must be an integer in [0, ", kMaxTokenId, ")");
    entries.emplace_back(token, id.get<int64_t>());
  }
  return entries;
}

// Entries into encoder and decoder tables.
void build_vocab(const VocabEntries& entries, const std::string& source,
                 std::unordered_map<std::string, int64_t>* encoder, std::vector<std::string>* decoder,
                 std::vector<char>* has_id) {
  INTERNVL_CHECK(!entries.empty(), ConfigError, source, ": the vocabulary is empty");
  encoder->reserve(entries.size());
  int64_t max_id = -1;
  for (const auto& [token, id] : entries) {
    (*encoder)[token] = id;  // json.load: a repeated key keeps its last id
    max_id = std::max(max_id, id);
  }
  decoder->assign(static_cast<size_t>(max_id + 1), std::string());
  has_id->assign(static_cast<size_t>(max_id + 1), 0);
  // decoder = {v: k for k, v in encoder.items()}: the last token with a given id wins.
  for (const auto& [token, id] : entries) {
    if (encoder->at(token) != id) continue;  // superseded by a later repeat of the key
    (*decoder)[static_cast<size_t>(id)] = token;
    (*has_id)[static_cast<size_t>(id)] = 1;
  }
}

// A fast reader for the flat {"token": id, ...} of vocab.json (nlohmann's DOM costs most of the
// load time of a 151k vocabulary). False on anything unusual: the caller then parses with
// nlohmann, which also gives the error message.
bool parse_flat_vocab(std::string_view s, VocabEntries* out) {
  size_t i = 0;
  const auto ws = [&] {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t')) ++i;
  };
  const auto hex4 = [&](uint32_t* v) {
    if (i + 4 > s.size()) return false;
    *v = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = s[i++];
      *v <<= 4;
      if (c >= '0' && c <= '9') *v |= static_cast<uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f') *v |= static_cast<uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') *v |= static_cast<uint32_t>(c - 'A' + 10);
      else return false;
    }
    return true;
  };
  ws();
  if (i >= s.size() || s[i++] != '{') return false;
  ws();
  if (i < s.size() && s[i] == '}') {
    ++i;
  } else {
    while (true) {
      ws();
      if (i >= s.size() || s[i++] != '"') return false;
      std::string key;
      while (true) {
        if (i >= s.size()) return false;
        const char c = s[i++];
        if (c == '"') break;
        if (static_cast<unsigned char>(c) < 0x20) return false;
        if (c != '\\') {
          key.push_back(c);
          continue;
        }
        if (i >= s.size()) return false;
        const char e = s[i++];
        switch (e) {
          case '"': key.push_back('"'); break;
          case '\\': key.push_back('\\'); break;
          case '/': key.push_back('/'); break;
          case 'b': key.push_back('\b'); break;
          case 'f': key.push_back('\f'); break;
          case 'n': key.push_back('\n'); break;
          case 'r': key.push_back('\r'); break;
          case 't': key.push_back('\t'); break;
          case 'u': {
            uint32_t cp = 0;
            if (!hex4(&cp)) return false;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
              uint32_t low = 0;
              if (i + 2 > s.size() || s[i] != '\\' || s[i + 1] != 'u') return false;
              i += 2;
              if (!hex4(&low) || low < 0xDC00 || low > 0xDFFF) return false;
              cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
              return false;
            }
            append_utf8(static_cast<char32_t>(cp), &key);
            break;
          }
          default: return false;
        }
      }
      ws();
      if (i >= s.size() || s[i++] != ':') return false;
      ws();
      const size_t start = i;
      int64_t value = 0;
      while (i < s.size() && s[i] >= '0' && s[i] <= '9' && i - start < 12) value = value * 10 + (s[i++] - '0');
      if (i == start || (s[start] == '0' && i - start > 1) || value >= kMaxTokenId) return false;
      out->emplace_back(std::move(key), value);
      ws();
      if (i >= s.size()) return false;
      const char sep = s[i++];
      if (sep == '}') break;
      if (sep != ',') return false;
    }
  }
  ws();
  return i == s.size();
}

}  // namespace

void BpeTokenizer::load_vocab_json(const std::string& path) {
  const std::string text = read_file(path);
  VocabEntries entries;
  if (!is_valid_utf8(text) || !parse_flat_vocab(text, &entries)) {
    json parsed;
    try {
      parsed = json::parse(text);
    } catch (const json::exception& e) {
      INTERNVL_THROW(ConfigError, path, ": malformed JSON (", e.what(), ")");
    }
    entries = vocab_entries(parsed, path);
  }
  build_vocab(entries, path, &encoder_, &decoder_, &has_id_);
}

void BpeTokenizer::finish_vocabulary(const std::string& source) {
  const auto map = bytes_to_unicode();
  for (int b = 0; b < 256; ++b) {
    std::string symbol;
    append_utf8(map[b], &symbol);
    auto it = encoder_.find(symbol);
    INTERNVL_CHECK(it != encoder_.end(), ConfigError, source, ": the byte-level vocabulary lacks the symbol '",
                   symbol, "' of byte ", b);
    byte_token_[b] = static_cast<int32_t>(it->second);
  }
}

void BpeTokenizer::add_merge(std::string_view first, std::string_view second, const std::string& source, size_t line) {
  const int32_t rank = static_cast<int32_t>(num_merges_++);
  const auto a = encoder_.find(std::string(first));
  const auto b = encoder_.find(std::string(second));
  if (a == encoder_.end() || b == encoder_.end()) return;  // a symbol BPE never makes: never applies
  std::string joined(first);
  joined += second;
  const auto merged = encoder_.find(joined);
  INTERNVL_CHECK(merged != encoder_.end(), ConfigError, source, ":", line, ": the merge '", first, " ", second,
                 "' makes '", joined, "', which is not in the vocabulary");
  const uint64_t key = (static_cast<uint64_t>(a->second) << 32) | static_cast<uint64_t>(b->second);
  merges_[key] = Merge{rank, static_cast<int32_t>(merged->second)};  // dict(zip(...)): the last rank wins
}

void BpeTokenizer::load_merges_txt(const std::string& path) {
  const std::string text = read_file(path);
  INTERNVL_CHECK(is_valid_utf8(text), ConfigError, path, ": not valid UTF-8");
  merges_.reserve(encoder_.size() + 16);
  size_t pos = 0, line_no = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const std::string_view line = strip_ascii(std::string_view(text).substr(pos, end - pos));
    ++line_no;
    pos = end + 1;
    // Qwen2Tokenizer.__init__ (4.55): skip a first "#version:" line and blank lines only.
    if (line.empty() || (line_no == 1 && line.rfind("#version:", 0) == 0)) continue;
    const size_t space = line.find_first_of(" \t");
    const std::string_view first = line.substr(0, space);
    const std::string_view second = space == std::string_view::npos ? std::string_view() : strip_ascii(line.substr(space));
    INTERNVL_CHECK(!second.empty() && second.find_first_of(" \t") == std::string_view::npos, ConfigError, path, ":",
                   line_no, ": expected two space-separated symbols, got '", line, "'");
    add_merge(first, second, path, line_no);
  }
  INTERNVL_CHECK(num_merges_ > 0 || encoder_.size() <= 256, ConfigError, path, ": no merges");
}

namespace {

// Reads what the BPE needs from tokenizer.json in one SAX pass (its DOM would cost seconds for the
// 11 MB Qwen file): model.type, model.vocab, model.merges ("a b" strings or [a, b] pairs) and the
// flat added_tokens objects. Shape problems are recorded and reported by the caller.
class TokenizerJsonReader : public nlohmann::json_sax<json> {
 public:
  bool root_is_object = false, has_model = false, model_is_object = false;
  json model_type;
  int vocab_state = 0;  // 0 missing, 1 object, 2 something else
  VocabEntries vocab;
  std::string bad_vocab_key;  // first key whose id is not an integer in range
  bool bad_vocab = false;
  int merges_state = 0;  // 0 missing, 1 list, 2 something else
  std::vector<std::pair<std::string, std::string>> merges;
  std::optional<size_t> bad_merge;  // index of the first malformed entry
  std::string bad_merge_text;
  json added_tokens;  // null when absent
  bool added_not_list = false;
  std::string parse_error_message;

  bool null() override { return value(json()); }
  bool boolean(bool v) override { return value(json(v)); }
  bool number_integer(number_integer_t v) override { return value(json(v)); }
  bool number_unsigned(number_unsigned_t v) override { return value(json(v)); }
  bool number_float(number_float_t v, const string_t&) override { return value(json(v)); }
  bool string(string_t& v) override {
    if (in_merges()) {
      const size_t space = v.find(' ');
      if (space != std::string::npos && space > 0 && space + 1 < v.size() && v.find(' ', space + 1) == std::string::npos)
        merges.emplace_back(v.substr(0, space), v.substr(space + 1));
      else
        fail_merge(v);
      next_index();
      return true;
    }
    if (in_merge_pair()) {
      pair_.push_back(std::move(v));
      return true;
    }
    return value(json(std::move(v)));
  }
  bool binary(binary_t&) override { return value(json()); }
  bool start_object(std::size_t) override {
    if (stack_.empty()) root_is_object = true;
    if (in_root() && key_is("model")) has_model = model_is_object = true;
    if (in_model() && key_is("vocab")) vocab_state = 1;
    if (in_added_list()) added_tokens.push_back(json::object());
    if (in_merges()) {
      fail_merge("an object");
      next_index();
    }
    stack_.push_back({true, {}, 0});
    return true;
  }
  bool key(string_t& k) override {
    stack_.back().key = std::move(k);
    return true;
  }
  bool end_object() override {
    stack_.pop_back();
    return true;
  }
  bool start_array(std::size_t) override {
    if (in_root() && key_is("model")) has_model = true;
    if (in_model() && key_is("vocab")) vocab_state = 2;
    if (in_model() && key_is("merges")) merges_state = 1;
    if (in_root() && key_is("added_tokens")) added_tokens = json::array();
    const bool pair = in_merges();
    stack_.push_back({false, {}, 0});
    if (pair) pair_.clear();
    return true;
  }
  bool end_array() override {
    const bool closing_pair = in_merge_pair();
    stack_.pop_back();
    if (closing_pair) {
      if (pair_.size() == 2) merges.emplace_back(std::move(pair_[0]), std::move(pair_[1]));
      else fail_merge("a list of " + std::to_string(pair_.size()));
      next_index();
    }
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    parse_error_message = e.what();
    return false;
  }

 private:
  struct Frame {
    bool object;
    std::string key;
    size_t index;  // arrays: the next element's index
  };
  std::vector<Frame> stack_;
  std::vector<std::string> pair_;

  bool key_is(const char* k) const { return stack_.back().object && stack_.back().key == k; }
  bool in_root() const { return stack_.size() == 1 && stack_[0].object; }
  bool in_model() const { return stack_.size() == 2 && stack_[0].object && stack_[0].key == "model" && stack_[1].object; }
  bool under_model_key(const char* k) const {
    return stack_.size() >= 3 && stack_[0].object && stack_[0].key == "model" && stack_[1].object && stack_[1].key == k;
  }
  bool in_vocab() const { return stack_.size() == 3 && under_model_key("vocab") && stack_[2].object; }
  bool in_merges() const { return stack_.size() == 3 && under_model_key("merges") && !stack_[2].object; }
  bool in_merge_pair() const { return stack_.size() == 4 && under_model_key("merges") && !stack_[2].object; }
  bool in_added_list() const {
    return stack_.size() == 2 && stack_[0].object && stack_[0].key == "added_tokens" && !stack_[1].object;
  }
  bool in_added_token() const {
    return stack_.size() == 3 && stack_[0].object && stack_[0].key == "added_tokens" && !stack_[1].object &&
           stack_[2].object;
  }
  void next_index() { ++stack_.back().index; }
  void fail_merge(const std::string& what) {
    if (bad_merge) return;
    bad_merge = stack_.back().index;
    bad_merge_text = what;
  }
  bool value(json v) {
    if (stack_.empty()) return true;  // a scalar root: reported as not an object
    if (in_vocab()) {
      if (v.is_number_integer() && v.get<int64_t>() >= 0 && v.get<int64_t>() < kMaxTokenId) {
        vocab.emplace_back(stack_.back().key, v.get<int64_t>());
      } else if (!bad_vocab) {
        bad_vocab = true;
        bad_vocab_key = stack_.back().key;
      }
    } else if (in_merges()) {
      fail_merge(v.dump());
      next_index();
    } else if (in_merge_pair()) {
      pair_.push_back("");  // not a string: counted, then rejected at the end of the pair
      fail_merge(v.dump());
    } else if (in_root() && key_is("model")) {
      has_model = true;
    } else if (in_model() && key_is("type")) {
      model_type = std::move(v);
    } else if (in_model() && key_is("vocab")) {
      vocab_state = 2;
    } else if (in_model() && key_is("merges")) {
      merges_state = 2;
    } else if (in_root() && key_is("added_tokens")) {
      if (!v.is_null()) added_not_list = true;
    } else if (in_added_list()) {
      added_tokens.push_back(std::move(v));
    } else if (in_added_token()) {
      added_tokens.back()[stack_.back().key] = std::move(v);
    }
    return true;
  }
};

}  // namespace

void BpeTokenizer::load_tokenizer_json(const std::string& path, json* added_tokens) {
  const std::string text = read_file(path);
  TokenizerJsonReader reader;
  json::sax_parse(text, &reader);
  INTERNVL_CHECK(reader.parse_error_message.empty(), ConfigError, path, ": malformed JSON (",
                 reader.parse_error_message, ")");
  INTERNVL_CHECK(reader.root_is_object && reader.model_is_object, ConfigError, path,
                 ": expected an object with a 'model' object");
  if (!reader.model_type.is_null()) {
    INTERNVL_CHECK(reader.model_type.is_string() && reader.model_type.get<std::string>() == "BPE", ConfigError, path,
                   ": model.type must be \"BPE\"");
  }
  INTERNVL_CHECK(reader.vocab_state != 0, ConfigError, path, ": model.vocab is missing");
  INTERNVL_CHECK(reader.vocab_state == 1, ConfigError, path,
                 " (model.vocab): the vocabulary must be a JSON object {token: id}");
  INTERNVL_CHECK(!reader.bad_vocab, ConfigError, path, " (model.vocab): the id of '", reader.bad_vocab_key,
                 "' must be an integer in [0, ", kMaxTokenId, ")");
  build_vocab(reader.vocab, path, &encoder_, &decoder_, &has_id_);
  finish_vocabulary(path);
  INTERNVL_CHECK(reader.merges_state == 1, ConfigError, path, ": model.merges must be a list");
  INTERNVL_CHECK(!reader.bad_merge, ConfigError, path, ": model.merges[", reader.bad_merge.value_or(0),
                 "] must be a string \"a b\" or a pair [a, b] (got ", reader.bad_merge_text, ")");
  merges_.reserve(reader.merges.size());
  size_t index = 0;
  for (const auto& [first, second] : reader.merges) add_merge(first, second, path, ++index);
  INTERNVL_CHECK(!reader.added_not_list, ConfigError, path, ": added_tokens must be a list");
  if (reader.added_tokens.is_array()) *added_tokens = std::move(reader.added_tokens);
}

// ---- encoding -----------------------------------------------------------------------------------

void BpeTokenizer::bpe_uncached(std::string_view word, std::vector<int32_t>* out) const {
  // Qwen2Tokenizer.bpe: repeatedly take the adjacent pair of lowest rank and merge all of its
  // occurrences left to right. Ranks of untouched neighbours are carried over between passes.
  const size_t n = word.size();
  std::vector<int32_t> symbols(n), ranks(n > 0 ? n - 1 : 0);
  for (size_t i = 0; i < n; ++i) symbols[i] = byte_token_[static_cast<unsigned char>(word[i])];
  const auto lookup = [&](int32_t a, int32_t b) -> const Merge* {
    const auto it = merges_.find((static_cast<uint64_t>(a) << 32) | static_cast<uint32_t>(b));
    return it == merges_.end() ? nullptr : &it->second;
  };
  for (size_t i = 0; i + 1 < n; ++i) {
    const Merge* m = lookup(symbols[i], symbols[i + 1]);
    ranks[i] = m ? m->rank : kNoRank;
  }
  std::vector<int32_t> next_symbols, next_ranks;
  std::vector<char> fresh;
  std::vector<size_t> origin;
  while (symbols.size() > 1) {
    const auto best = std::min_element(ranks.begin(), ranks.end());
    if (*best == kNoRank) break;
    const size_t at = static_cast<size_t>(best - ranks.begin());
    const int32_t first = symbols[at], second = symbols[at + 1];
    const int32_t merged = lookup(first, second)->merged;
    next_symbols.clear();
    fresh.clear();
    origin.clear();
    for (size_t i = 0; i < symbols.size();) {
      origin.push_back(i);
      if (i + 1 < symbols.size() && symbols[i] == first && symbols[i + 1] == second) {
        next_symbols.push_back(merged);
        fresh.push_back(1);
        i += 2;
      } else {
        next_symbols.push_back(symbols[i]);
        fresh.push_back(0);
        i += 1;
      }
    }
    next_ranks.resize(next_symbols.size() - 1);
    for (size_t k = 0; k + 1 < next_symbols.size(); ++k) {
      if (!fresh[k] && !fresh[k + 1]) {
        next_ranks[k] = ranks[origin[k]];
      } else {
        const Merge* m = lookup(next_symbols[k], next_symbols[k + 1]);
        next_ranks[k] = m ? m->rank : kNoRank;
      }
    }
    symbols.swap(next_symbols);
    ranks.swap(next_ranks);
  }
  out->insert(out->end(), symbols.begin(), symbols.end());
}

void BpeTokenizer::bpe_word(std::string_view word, std::vector<int32_t>* out) const {
  if (word.size() == 1) {
    out->push_back(byte_token_[static_cast<unsigned char>(word[0])]);
    return;
  }
  const bool cacheable = word.size() <= kMaxCachedWord;
  std::string key;
  if (cacheable) {
    key.assign(word);
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (auto it = cache_.find(key); it != cache_.end()) {
      out->insert(out->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t before = out->size();
  bpe_uncached(word, out);
  if (cacheable) {
    std::vector<int32_t> value(out->begin() + static_cast<std::ptrdiff_t>(before), out->end());
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (cache_.size() >= kMaxCacheEntries) cache_.clear();
    cache_.emplace(std::move(key), std::move(value));
  }
}

template <typename Fn>
void BpeTokenizer::for_each_match(std::string_view piece, Fn&& fn) const {
  pcre2_match_data* match = pcre2_match_data_create_from_pattern(regex_->code, nullptr);
  INTERNVL_CHECK(match != nullptr, InvalidArgument, "out of memory for the pre-tokenizer");
  struct Free {
    pcre2_match_data* m;
    ~Free() { pcre2_match_data_free(m); }
  } free_match{match};
  const auto subject = reinterpret_cast<PCRE2_SPTR>(piece.data());
  size_t offset = 0;
  while (offset < piece.size()) {
    int rc = regex_->jit ? pcre2_jit_match(regex_->code, subject, piece.size(), offset, 0, match, nullptr)
                         : PCRE2_ERROR_JIT_BADOPTION;
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT || rc == PCRE2_ERROR_JIT_BADOPTION)
      rc = pcre2_match(regex_->code, subject, piece.size(), offset, PCRE2_NO_UTF_CHECK, match, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    INTERNVL_CHECK(rc >= 0, InvalidArgument, "the pre-tokenizer regex failed (PCRE2 error ", rc, ")");
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match);
    const size_t start = ovector[0], end = ovector[1];
    if (end <= start) {  // cannot happen with this pattern; step over one character anyway
      offset = start + 1;
      while (offset < piece.size() && (static_cast<unsigned char>(piece[offset]) & 0xC0) == 0x80) ++offset;
      continue;
    }
    fn(start, end);
    offset = end;
  }
}

std::vector<std::string> BpeTokenizer::pre_tokenize(std::string_view segment) const {
  INTERNVL_CHECK(is_valid_utf8(segment), InvalidArgument, "pre_tokenize: the text is not valid UTF-8");
  std::vector<std::string> out;
  for_each_match(segment, [&](size_t start, size_t end) { out.emplace_back(segment.substr(start, end - start)); });
  return out;
}

template <typename Sink>
void BpeTokenizer::encode_into(std::string_view text, Sink&& sink) const {
  // prepare_for_tokenization: NFC over the whole text, before the added tokens are split out.
  const std::string normalized = nfc_normalize(text);
  std::vector<int32_t> word_ids;
  for (const auto& piece : added_.split(normalized)) {
    if (auto added = added_.find(piece)) {
      sink(*added, &piece);
      continue;
    }
    for_each_match(piece, [&](size_t start, size_t end) {
      word_ids.clear();
      bpe_word(std::string_view(piece).substr(start, end - start), &word_ids);
      for (const int32_t id : word_ids) sink(static_cast<int64_t>(id), nullptr);
    });
  }
}

std::vector<std::string> BpeTokenizer::tokenize(std::string_view text) const {
  std::vector<std::string> tokens;
  encode_into(text, [&](int64_t id, const std::string* added) {
    tokens.push_back(added ? *added : decoder_[static_cast<size_t>(id)]);
  });
  return tokens;
}

std::vector<int64_t> BpeTokenizer::encode(std::string_view text, bool add_special_tokens) const {
  std::vector<int64_t> ids;
  ids.reserve(text.size() / 3 + 2);
  if (add_special_tokens && add_bos_ && bos_id() >= 0) ids.push_back(bos_id());
  encode_into(text, [&](int64_t id, const std::string*) { ids.push_back(id); });
  if (add_special_tokens && add_eos_ && eos_id() >= 0) ids.push_back(eos_id());
  return ids;
}

// ---- ids and tokens -----------------------------------------------------------------------------

void BpeTokenizer::check_id(int64_t id) const {
  const bool in_vocab = id >= 0 && id < static_cast<int64_t>(has_id_.size()) && has_id_[static_cast<size_t>(id)];
  INTERNVL_CHECK(in_vocab || (id >= 0 && added_.decoder.count(id) != 0), InvalidArgument, "token id ", id,
                 " is out of range (vocabulary size ", added_.vocab_size, ")");
}

std::string BpeTokenizer::id_to_token(int64_t id) const {
  if (auto it = added_.decoder.find(id); it != added_.decoder.end()) return it->second.content;
  return decoder_[static_cast<size_t>(id)];
}

int64_t BpeTokenizer::token_to_id(std::string_view token) const {
  const std::string key(token);
  if (auto it = added_.encoder.find(key); it != added_.encoder.end()) return it->second;
  if (auto it = encoder_.find(key); it != encoder_.end()) return it->second;
  return added_.special_id(added_.unk);
}

std::optional<int64_t> BpeTokenizer::find_token(std::string_view token) const {
  const std::string key(token);
  if (auto it = added_.encoder.find(key); it != added_.encoder.end()) return it->second;
  if (auto it = encoder_.find(key); it != encoder_.end()) return it->second;
  return std::nullopt;
}

// ---- decoding -----------------------------------------------------------------------------------

void BpeTokenizer::append_token_bytes(const std::string& token, std::string* bytes) const {
  size_t i = 0;
  while (i < token.size()) {
    const size_t start = i;
    const char32_t cp = next_code_point(token, &i);
    const int byte = cp < unicode_to_byte_.size() ? unicode_to_byte_[cp] : -1;
    // Python raises KeyError on a character outside the byte alphabet (only possible in an added
    // token that is not in legacy_added_tokens); keep its UTF-8 instead.
    if (byte >= 0) bytes->push_back(static_cast<char>(byte));
    else bytes->append(token, start, i - start);
  }
}

std::string BpeTokenizer::bytes_to_text(std::string_view bytes) const {
  if (errors_ == "replace") return decode_utf8_replace(bytes);
  if (errors_ == "strict") {
    INTERNVL_CHECK(is_valid_utf8(bytes), InvalidArgument, "decode: the token bytes are not valid UTF-8 (errors=strict)");
    return std::string(bytes);
  }
  std::string out;  // "ignore": drop what "replace" would replace
  size_t i = 0;
  while (i < bytes.size()) {
    size_t need = 0;
    const size_t have = utf8_prefix(bytes, i, &need);
    if (have == need && need > 0) out.append(bytes.substr(i, need));
    i += std::max<size_t>(have == need ? need : have, 1);
  }
  return out;
}

std::string BpeTokenizer::decode_tokens(const std::vector<std::string>& tokens, const DecodeOptions& options) const {
  // PreTrainedTokenizer._decode: legacy added tokens stand alone, runs of other tokens go
  // through convert_tokens_to_string; Qwen2Tokenizer._decode joins them without spaces.
  std::vector<std::string> sub_texts;
  std::string current;
  bool open = false;
  for (const auto& token : tokens) {
    if (added_.legacy.count(token)) {
      if (open) {
        std::string text = bytes_to_text(current);
        if (!text.empty()) sub_texts.push_back(std::move(text));
        current.clear();
        open = false;
      }
      sub_texts.push_back(token);
    } else {
      append_token_bytes(token, &current);
      open = true;
    }
  }
  if (open) sub_texts.push_back(bytes_to_text(current));
  const bool spaces = options.spaces_between_special_tokens.value_or(false);
  std::string text;
  for (size_t i = 0; i < sub_texts.size(); ++i) {
    if (i > 0 && spaces) text += ' ';
    text += sub_texts[i];
  }
  if (options.clean_up_tokenization_spaces.value_or(clean_up_spaces_)) text = clean_up_tokenization(text);
  return text;
}

size_t BpeTokenizer::stable_length(const std::vector<std::string>& tokens, const std::string& text,
                                   const DecodeOptions& options) const {
  size_t stable = text.size();
  // A trailing incomplete UTF-8 sequence decodes to one U+FFFD (replace) until it completes.
  size_t pending = 0;
  if (!tokens.empty() && !added_.legacy.count(tokens.back())) {
    std::string tail;
    for (auto it = tokens.rbegin(); it != tokens.rend() && tail.size() < 4 && !added_.legacy.count(*it); ++it) {
      std::string bytes;
      append_token_bytes(*it, &bytes);
      tail.insert(0, bytes);
    }
    pending = incomplete_utf8_tail(tail);
  }
  if (pending > 0 && errors_ == "replace") {
    if (stable >= kReplacement.size() && text.compare(stable - kReplacement.size(), kReplacement.size(), kReplacement) == 0)
      stable -= kReplacement.size();
    else
      stable = 0;  // not the expected shape (clean-up moved things): wait for flush()
  }
  // clean_up_tokenization may still delete spaces near the end: only a prefix whose clean-up
  // cannot interact with later text is final.
  if (options.clean_up_tokenization_spaces.value_or(clean_up_spaces_)) {
    DecodeOptions raw_options = options;
    raw_options.clean_up_tokenization_spaces = false;
    const std::string raw = decode_tokens(tokens, raw_options);
    size_t cut = raw.size();
    if (pending > 0 && errors_ == "replace" && cut >= kReplacement.size()) cut -= kReplacement.size();
    while (cut > 0 && !clean_up_tokenization_is_final(std::string_view(raw).substr(0, cut))) --cut;
    const std::string final_part = clean_up_tokenization(std::string_view(raw).substr(0, cut));
    if (text.compare(0, final_part.size(), final_part) != 0) return 0;
    stable = std::min(stable, final_part.size());
  }
  return stable;
}

}  // namespace internvl::tokenizer
