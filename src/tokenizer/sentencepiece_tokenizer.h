// SentencePiece backend: transformers 4.37 LlamaTokenizer (legacy or not) and the official
// InternLM2Tokenizer (tokenization_internlm2.py) over the SentencePiece C++ library (the same
// 0.1.97 the fixtures were made with).
#pragma once

#include <sentencepiece_processor.h>

#include "tokenizer/tokenizer_backend.h"

namespace internvl::tokenizer {

class SentencePieceTokenizer final : public TokenizerBackend {
 public:
  // Reads `<dir>/tokenizer.model` and the optional JSON files; `config` already read.
  SentencePieceTokenizer(const std::string& dir, const TokenizerConfigFiles& files, const TokenizerOptions& options);

  TokenizerFlavour flavour() const override { return flavour_; }
  std::vector<std::string> tokenize(std::string_view text) const override;
  std::vector<int64_t> encode(std::string_view text, bool add_special_tokens) const override;
  int64_t base_vocab_size() const override { return sp_size_; }
  void check_id(int64_t id) const override;
  std::string id_to_token(int64_t id) const override;
  int64_t token_to_id(std::string_view token) const override;
  std::optional<int64_t> find_token(std::string_view token) const override;
  std::string decode_tokens(const std::vector<std::string>& tokens, const DecodeOptions& options) const override;
  // bos_token_id / eos_token_id: InternLM2Tokenizer takes them from the SentencePiece model.
  int64_t bos_id() const override;
  int64_t eos_id() const override;
  size_t stable_length(const std::vector<std::string>& tokens, const std::string& text,
                       const DecodeOptions& options) const override;
  bool can_checkpoint_after(const std::string& token) const override;

 private:
  std::vector<std::string> base_tokenize(std::string_view text) const;  // PreTrainedTokenizer.tokenize
  std::vector<std::string> sp_tokenize(std::string_view text) const;    // the class's _tokenize
  std::string sp_decode(const std::vector<std::string>& pieces) const;
  // `raw`: skip InternLM2Tokenizer's clean_up_tokenization (for the stream decoder).
  std::string convert_tokens_to_string(std::vector<std::string> tokens, bool raw = false) const;
  bool is_byte_piece(const std::string& piece) const;
  bool is_sp_piece(std::string_view token) const;

  TokenizerFlavour flavour_ = TokenizerFlavour::kLlamaLegacy;
  sentencepiece::SentencePieceProcessor sp_;
  int64_t sp_size_ = 0;
  size_t unk_token_length_ = 0;  // LlamaTokenizer.unk_token_length (legacy=false)
  bool clean_up_spaces_ = false;
};

}  // namespace internvl::tokenizer
