// Byte-level BPE backend: transformers' slow Qwen2Tokenizer (4.37 / 4.55), the tokenizer of the
// InternVL2 / 2.5 / 3 / 3.5 Qwen checkpoints.
//   encode: NFC over the whole text (prepare_for_tokenization), the added-token split, Qwen's
//           pre-tokenizer regex on each remaining segment, GPT-2's byte -> unicode map, merges by
//           rank (Qwen2Tokenizer.bpe); no bos / eos.
//   decode: PreTrainedTokenizer._decode with Qwen2Tokenizer's defaults (no spaces between added
//           tokens, no clean-up) and convert_tokens_to_string: bytes through the inverse map,
//           then bytes.decode("utf-8", errors="replace").
// Vocabulary files: vocab.json + merges.txt, else tokenizer.json (model.vocab, model.merges,
// added_tokens).
#pragma once

#include <array>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "tokenizer/tokenizer_backend.h"

namespace internvl::tokenizer {

// bytes.decode("utf-8", errors="replace"): each maximal invalid subpart becomes one U+FFFD, as
// CPython's decoder does.
std::string decode_utf8_replace(std::string_view bytes);
// Length of a trailing incomplete (but so far valid) UTF-8 sequence of `bytes`, 0 when none.
size_t incomplete_utf8_tail(std::string_view bytes);
// unicodedata.normalize("NFC", text) for valid UTF-8 (utf8proc). InvalidArgument on failure.
std::string nfc_normalize(std::string_view text);

class BpeTokenizer final : public TokenizerBackend {
 public:
  BpeTokenizer(const std::string& dir, const TokenizerConfigFiles& files, const TokenizerOptions& options);
  ~BpeTokenizer() override;

  TokenizerFlavour flavour() const override { return TokenizerFlavour::kQwen2Bpe; }
  std::vector<std::string> tokenize(std::string_view text) const override;
  std::vector<int64_t> encode(std::string_view text, bool add_special_tokens) const override;
  int64_t base_vocab_size() const override { return static_cast<int64_t>(encoder_.size()); }
  void check_id(int64_t id) const override;
  std::string id_to_token(int64_t id) const override;
  int64_t token_to_id(std::string_view token) const override;
  std::optional<int64_t> find_token(std::string_view token) const override;
  std::string decode_tokens(const std::vector<std::string>& tokens, const DecodeOptions& options) const override;
  size_t stable_length(const std::vector<std::string>& tokens, const std::string& text,
                       const DecodeOptions& options) const override;
  bool can_checkpoint_after(const std::string& token) const override { return true; }

  // Merges read (after the header).
  size_t num_merges() const { return num_merges_; }
  // The pre-tokenizer regex's matches (re.findall) on one segment of valid UTF-8 (no NFC, no
  // added-token split).
  std::vector<std::string> pre_tokenize(std::string_view segment) const;

 private:
  struct Merge {
    int32_t rank;
    int32_t merged;  // vocabulary id of the concatenation
  };
  void load_vocab_json(const std::string& path);
  void load_merges_txt(const std::string& path);
  void load_tokenizer_json(const std::string& path, nlohmann::json* added_tokens);
  void add_merge(std::string_view first, std::string_view second, const std::string& source, size_t line);
  void finish_vocabulary(const std::string& source);
  void compile_pretokenizer();

  // Calls fn(start, end) for every regex match of `piece`.
  template <typename Fn>
  void for_each_match(std::string_view piece, Fn&& fn) const;
  // Calls `sink(vocabulary id)` for every BPE token of `text` after NFC; added tokens as their id.
  template <typename Sink>
  void encode_into(std::string_view text, Sink&& sink) const;
  // Qwen2Tokenizer.bpe on the bytes of one pre-token: vocabulary ids, cached per word.
  void bpe_word(std::string_view word, std::vector<int32_t>* out) const;
  void bpe_uncached(std::string_view word, std::vector<int32_t>* out) const;
  // convert_tokens_to_string: the bytes of the token strings, decoded with errors="replace".
  void append_token_bytes(const std::string& token, std::string* bytes) const;
  std::string bytes_to_text(std::string_view bytes) const;

  std::unordered_map<std::string, int64_t> encoder_;  // vocab.json
  std::vector<std::string> decoder_;                  // id -> token string ("" for gaps)
  std::vector<char> has_id_;                          // id present in vocab.json
  std::unordered_map<uint64_t, Merge> merges_;        // (first id << 32 | second id) -> merge
  size_t num_merges_ = 0;
  std::array<int32_t, 256> byte_token_{};             // byte -> vocabulary id of its symbol
  std::array<int16_t, 324> unicode_to_byte_{};        // GPT-2 symbol code point -> byte (-1: none)
  std::string errors_ = "replace";                    // bytes.decode's errors
  bool clean_up_spaces_ = false;

  struct Regex;  // the compiled pre-tokenizer (PCRE2)
  std::unique_ptr<Regex> regex_;

  static constexpr size_t kMaxCachedWord = 128;      // bytes; longer pre-tokens are not cached
  static constexpr size_t kMaxCacheEntries = 1 << 20;
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace internvl::tokenizer
