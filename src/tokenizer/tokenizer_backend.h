// The interface behind Tokenizer: one implementation per vocabulary format (SentencePiece,
// byte-level BPE). Added / special tokens are shared (AddedTokens); the facade validates input,
// the backends only see well-formed UTF-8 and checked ids.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/added_tokens.h"
#include "tokenizer/tokenizer.h"

namespace internvl::tokenizer {

class TokenizerBackend {
 public:
  virtual ~TokenizerBackend() = default;

  virtual TokenizerFlavour flavour() const = 0;
  // The class's tokenize(text) (token strings, added tokens as their content).
  virtual std::vector<std::string> tokenize(std::string_view text) const = 0;
  virtual std::vector<int64_t> encode(std::string_view text, bool add_special_tokens) const = 0;

  // The base vocabulary (SentencePiece pieces, vocab.json entries).
  virtual int64_t base_vocab_size() const = 0;
  // InvalidArgument unless `id` names a token.
  virtual void check_id(int64_t id) const = 0;
  // convert_ids_to_tokens of a checked id.
  virtual std::string id_to_token(int64_t id) const = 0;
  virtual int64_t token_to_id(std::string_view token) const = 0;
  virtual std::optional<int64_t> find_token(std::string_view token) const = 0;
  // PreTrainedTokenizer._decode after convert_ids_to_tokens (skipped ids already removed).
  virtual std::string decode_tokens(const std::vector<std::string>& tokens, const DecodeOptions& options) const = 0;

  virtual int64_t bos_id() const { return added_.special_id(added_.bos); }
  virtual int64_t eos_id() const { return added_.special_id(added_.eos); }

  // Streaming: how much of `text` = decode_tokens(tokens, options) can no longer change,
  // whatever tokens follow.
  virtual size_t stable_length(const std::vector<std::string>& tokens, const std::string& text,
                               const DecodeOptions& options) const = 0;
  // Whether the stream decoder may start a fresh window after `token` (given everything decoded
  // so far is final): nothing decoded later depends on what came before it.
  virtual bool can_checkpoint_after(const std::string& token) const = 0;

  bool is_skipped(int64_t id, const DecodeOptions& options) const {
    return options.skip_special_tokens && added_.all_special_ids.count(id) != 0;
  }
  const AddedTokens& added() const { return added_; }

  std::string dir_;
  bool add_bos_ = false;
  bool add_eos_ = false;

 protected:
  AddedTokens added_;
};

}  // namespace internvl::tokenizer
