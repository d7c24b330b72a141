// The tokenizers of the InternVL families, reproducing the Hugging Face *slow* tokenizers the
// official code runs. Two backends behind one Tokenizer type:
//   SentencePiece (tokenizer.model; transformers 4.37):
//   * LlamaTokenizer, legacy=true   — QLLaMA / InternVL-14B (InternVL-C/G text encoder)
//   * LlamaTokenizer, legacy=false  — InternVL-Chat-V1-2 style checkpoints (template Hermes-2)
//   * InternLM2Tokenizer            — InternVL2 InternLM2 checkpoints (tokenization_internlm2.py)
//   byte-level BPE (vocab.json + merges.txt, or tokenizer.json):
//   * Qwen2Tokenizer                — InternVL2 / 2.5 / 3 / 3.5 Qwen2, Qwen2.5 and Qwen3 checkpoints
//
// Encoding follows PreTrainedTokenizer.tokenize: the text is first split on every added / special
// token string (leftmost, longest first, like its Trie), honouring each AddedToken's
// lstrip / rstrip / single_word flags; the remaining segments go to the backend (SentencePiece
// with the flavour's dummy-prefix rule; Qwen's pre-tokenizer regex + BPE after NFC of the whole
// text); ids come from convert_tokens_to_ids (added tokens first).
// Decoding follows PreTrainedTokenizer._decode + the class's convert_tokens_to_string.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace internvl::tokenizer {

enum class TokenizerFlavour {
  kAuto,          // detect from tokenizer_config.json (`tokenizer_class`, `legacy`)
  kLlamaLegacy,   // transformers LlamaTokenizer with legacy=true (every segment gets a dummy prefix)
  kLlama,         // transformers LlamaTokenizer with legacy=false (one '▁' for the whole text)
  kInternLM2,     // official InternLM2Tokenizer (every segment gets a dummy prefix)
  kQwen2Bpe,      // transformers Qwen2Tokenizer (byte-level BPE; Qwen2, Qwen2.5, Qwen3)
};

const char* to_string(TokenizerFlavour flavour);

struct TokenizerOptions {
  TokenizerFlavour flavour = TokenizerFlavour::kAuto;  // override the detected class / legacy flag
  std::optional<bool> add_bos_token;                  // override tokenizer_config.json `add_bos_token`
  std::optional<bool> add_eos_token;                  // override tokenizer_config.json `add_eos_token`
};

// One entry of `added_tokens_decoder` (transformers' AddedToken).
struct AddedToken {
  std::string content;
  bool lstrip = false;       // eat whitespace on the left of the token when splitting
  bool rstrip = false;       // eat whitespace on the right of the token when splitting
  bool single_word = false;  // only match as a whole word
  bool normalized = false;   // (fast tokenizers only; kept for completeness)
  bool special = false;      // marked special in tokenizer_config.json
};

struct DecodeOptions {
  bool skip_special_tokens = false;           // drop bos/eos/unk/pad and additional special tokens
  // Join added-token pieces with ' '; default: the class's _decode default (true, but false for
  // Qwen2Tokenizer).
  std::optional<bool> spaces_between_special_tokens;
  std::optional<bool> clean_up_tokenization_spaces;  // default: tokenizer_config.json's value
};

// InternVL-C/G text input (InternVLTokenizer of the official clip_benchmark code).
struct RetrievalEncoding {
  std::vector<int64_t> input_ids;  // [max_length]: bos, pieces, eos, then pad id
  int64_t length = 0;              // tokens before padding (the official mask is `input_ids > 0`)
};

class TokenizerBackend;

class Tokenizer {
 public:
  // Loads the vocabulary — `<dir>/tokenizer.model` (SentencePiece), else `vocab.json` +
  // `merges.txt` (BPE), else `tokenizer.json` (BPE); an explicit flavour picks the backend — and
  // the optional `tokenizer_config.json`, `special_tokens_map.json`, `added_tokens.json`.
  // Throws ConfigError naming the offending file.
  explicit Tokenizer(const std::string& dir, const TokenizerOptions& options = {});
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // True when `dir` holds the files of one of the backends (see the constructor).
  static bool has_tokenizer_files(const std::string& dir);

  TokenizerFlavour flavour() const;
  const std::string& directory() const;

  // HF `tokenizer.tokenize(text)`: piece strings (added tokens as their content).
  std::vector<std::string> tokenize(std::string_view text) const;
  // HF `tokenizer(text, add_special_tokens=...)["input_ids"]`. Throws InvalidArgument on
  // malformed UTF-8.
  std::vector<int64_t> encode(std::string_view text, bool add_special_tokens = true) const;
  // HF `tokenizer.decode(ids, ...)`. Throws InvalidArgument on an id outside [0, vocab_size()).
  std::string decode(const std::vector<int64_t>& ids, const DecodeOptions& options = {}) const;

  // InternVLTokenizer: `tokenizer(prefix + text, max_length, truncation=True,
  // padding='max_length')` with add_eos_token forced on and pad token ' ' (not a piece, so its id
  // is the unk id). Long texts keep eos at the last position.
  RetrievalEncoding encode_for_retrieval(std::string_view text, int64_t max_length = 80,
                                         std::string_view prefix = "summarize:") const;

  // len(tokenizer): the base vocabulary plus added tokens beyond it.
  int64_t vocab_size() const;
  // The base vocabulary only (the class's `vocab_size` property): SentencePiece pieces or
  // vocab.json entries.
  int64_t base_vocab_size() const;
  int64_t sp_vocab_size() const { return base_vocab_size(); }

  // convert_ids_to_tokens (added tokens first). Throws InvalidArgument when out of range.
  std::string id_to_piece(int64_t id) const;
  // convert_tokens_to_ids: added tokens, then the base vocabulary (unknown strings give unk_id()).
  int64_t token_to_id(std::string_view token) const;
  // The id of an exact added token or base token; nullopt when neither exists.
  std::optional<int64_t> find_token(std::string_view token) const;

  // Special tokens (-1 when the tokenizer has none).
  int64_t bos_id() const;
  int64_t eos_id() const;
  int64_t pad_id() const;
  int64_t unk_id() const;
  const std::string& bos_token() const;
  const std::string& eos_token() const;
  const std::string& pad_token() const;
  const std::string& unk_token() const;
  // all_special_tokens (bos, eos, unk, pad, additional_special_tokens) and their ids.
  const std::vector<std::string>& special_tokens() const;
  bool is_special_id(int64_t id) const;
  // Added tokens by id (from added_tokens_decoder / added_tokens.json / the special tokens).
  std::vector<std::pair<int64_t, AddedToken>> added_tokens() const;

  bool add_bos_token() const;
  bool add_eos_token() const;
  void set_add_bos_token(bool value);
  void set_add_eos_token(bool value);

  // The backend (for the stream decoder and tests of internals).
  const TokenizerBackend& backend() const { return *backend_; }

 private:
  std::unique_ptr<TokenizerBackend> backend_;
};

// Incremental detokenizer for generation: push ids one at a time and get the newly completed
// text. The concatenation of every push() and a final flush() equals
// tokenizer.decode(all ids, options). Text is held back while it may still change (the backend
// says how much of the decoded window is final):
//   * an incomplete UTF-8 sequence of byte pieces / BPE bytes (U+FFFD in decode until complete);
//   * with clean_up_tokenization (always for InternLM2), a tail whose cleanup could still
//     change (" ." -> ".", " n't", " ' " ...);
//   * with special tokens kept (skip_special_tokens=false) for InternLM2 / legacy LLaMA, the text
//     since the last special token, because those classes put a space in front of it when the
//     next special token arrives.
// Each push costs O(window): the decoder re-decodes only the tokens since its last checkpoint
// (plus a few tokens of context), taking checkpoints wherever everything so far is final.
// The Tokenizer must outlive the decoder (moving the Tokenizer object is fine).
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, const DecodeOptions& options = {});

  std::string push(int64_t id);
  std::string push(const std::vector<int64_t>& ids);
  // Everything not yet returned. Call it once, at the end of the sequence.
  std::string flush();
  void reset();

  const std::vector<int64_t>& ids() const { return ids_; }
  // The text returned so far.
  const std::string& emitted() const { return emitted_; }

 private:
  // Emits rest-of-window text up to `stable` (window coordinates); returns the new text.
  std::string emit(const std::string& window_text, size_t stable);
  void maybe_checkpoint(const std::string& window_text, size_t stable);

  const TokenizerBackend* backend_;  // stays valid when the Tokenizer object is moved
  DecodeOptions options_;
  std::vector<int64_t> ids_;
  std::vector<std::string> window_;  // context tokens, then the tokens since the last checkpoint
  std::string context_text_;         // decode(context tokens) on their own
  size_t checkpoint_emitted_ = 0;    // emitted_.size() when the checkpoint was taken
  std::string emitted_;
};

}  // namespace internvl::tokenizer
