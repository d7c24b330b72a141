// The Tokenizer facade: picks the backend from the files in the folder and validates input; the
// backends (sentencepiece_tokenizer.cpp, bpe_tokenizer.cpp) do the work.
#include "tokenizer/tokenizer.h"

#include "common/check.h"
#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/sentencepiece_tokenizer.h"
#include "tokenizer/text_util.h"

namespace internvl::tokenizer {

const char* to_string(TokenizerFlavour flavour) {
  switch (flavour) {
    case TokenizerFlavour::kLlamaLegacy: return "LlamaTokenizer(legacy=true)";
    case TokenizerFlavour::kLlama: return "LlamaTokenizer(legacy=false)";
    case TokenizerFlavour::kInternLM2: return "InternLM2Tokenizer";
    case TokenizerFlavour::kQwen2Bpe: return "Qwen2Tokenizer";
    default: return "auto";
  }
}

namespace {

bool has_bpe_pair(const std::string& dir) {
  return file_exists(dir + "/vocab.json") && file_exists(dir + "/merges.txt");
}

std::unique_ptr<TokenizerBackend> make_backend(const std::string& dir, const TokenizerOptions& options) {
  const TokenizerConfigFiles files = read_config_files(dir);
  const bool sentencepiece_flavour = options.flavour == TokenizerFlavour::kLlamaLegacy ||
                                     options.flavour == TokenizerFlavour::kLlama ||
                                     options.flavour == TokenizerFlavour::kInternLM2;
  const bool bpe = options.flavour == TokenizerFlavour::kQwen2Bpe ||
                   (!sentencepiece_flavour && !file_exists(dir + "/tokenizer.model") &&
                    (has_bpe_pair(dir) || file_exists(dir + "/tokenizer.json")));
  if (bpe) return std::make_unique<BpeTokenizer>(dir, files, options);
  // The SentencePiece backend names the missing tokenizer.model when nothing is there.
  return std::make_unique<SentencePieceTokenizer>(dir, files, options);
}

}  // namespace

bool Tokenizer::has_tokenizer_files(const std::string& dir) {
  return file_exists(dir + "/tokenizer.model") || has_bpe_pair(dir) || file_exists(dir + "/tokenizer.json");
}

Tokenizer::Tokenizer(const std::string& dir, const TokenizerOptions& options) : backend_(make_backend(dir, options)) {}
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

TokenizerFlavour Tokenizer::flavour() const { return backend_->flavour(); }
const std::string& Tokenizer::directory() const { return backend_->dir_; }

std::vector<std::string> Tokenizer::tokenize(std::string_view text) const {
  INTERNVL_CHECK(is_valid_utf8(text), InvalidArgument, "Tokenizer::tokenize: the text is not valid UTF-8");
  return backend_->tokenize(text);
}

std::vector<int64_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  INTERNVL_CHECK(is_valid_utf8(text), InvalidArgument, "Tokenizer::encode: the text is not valid UTF-8");
  return backend_->encode(text, add_special_tokens);
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids, const DecodeOptions& options) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (const int64_t id : ids) {
    backend_->check_id(id);
    if (!backend_->is_skipped(id, options)) tokens.push_back(backend_->id_to_token(id));
  }
  return backend_->decode_tokens(tokens, options);
}

RetrievalEncoding Tokenizer::encode_for_retrieval(std::string_view text, int64_t max_length,
                                                  std::string_view prefix) const {
  const TokenizerBackend& impl = *backend_;
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

int64_t Tokenizer::vocab_size() const { return backend_->added().vocab_size; }
int64_t Tokenizer::base_vocab_size() const { return backend_->base_vocab_size(); }
std::string Tokenizer::id_to_piece(int64_t id) const {
  backend_->check_id(id);
  return backend_->id_to_token(id);
}
int64_t Tokenizer::token_to_id(std::string_view token) const { return backend_->token_to_id(token); }
std::optional<int64_t> Tokenizer::find_token(std::string_view token) const { return backend_->find_token(token); }

int64_t Tokenizer::bos_id() const { return backend_->bos_id(); }
int64_t Tokenizer::eos_id() const { return backend_->eos_id(); }
int64_t Tokenizer::pad_id() const { return backend_->added().special_id(backend_->added().pad); }
int64_t Tokenizer::unk_id() const { return backend_->added().special_id(backend_->added().unk); }
const std::string& Tokenizer::bos_token() const { return backend_->added().bos.content; }
const std::string& Tokenizer::eos_token() const { return backend_->added().eos.content; }
const std::string& Tokenizer::pad_token() const { return backend_->added().pad.content; }
const std::string& Tokenizer::unk_token() const { return backend_->added().unk.content; }
const std::vector<std::string>& Tokenizer::special_tokens() const { return backend_->added().all_special_tokens; }
bool Tokenizer::is_special_id(int64_t id) const { return backend_->added().all_special_ids.count(id) != 0; }

std::vector<std::pair<int64_t, AddedToken>> Tokenizer::added_tokens() const {
  return {backend_->added().decoder.begin(), backend_->added().decoder.end()};
}

bool Tokenizer::add_bos_token() const { return backend_->add_bos_; }
bool Tokenizer::add_eos_token() const { return backend_->add_eos_; }
void Tokenizer::set_add_bos_token(bool value) { backend_->add_bos_ = value; }
void Tokenizer::set_add_eos_token(bool value) { backend_->add_eos_ = value; }

}  // namespace internvl::tokenizer
