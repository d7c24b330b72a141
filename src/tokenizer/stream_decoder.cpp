// StreamDecoder over any backend: re-decodes a short window of tokens per push and returns what
// the backend says is final (TokenizerBackend::stable_length).
#include "common/check.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_backend.h"

namespace internvl::tokenizer {

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, const DecodeOptions& options)
    : backend_(&tokenizer.backend()), options_(options) {}

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
  const TokenizerBackend& impl = *backend_;
  if (!impl.can_checkpoint_after(window_.back())) return;
  std::vector<std::string> context(window_.end() - kContext, window_.end());
  std::string context_text = impl.decode_tokens(context, options_);
  if (context_text.empty() || impl.stable_length(context, context_text, options_) != context_text.size()) return;
  window_ = std::move(context);
  context_text_ = std::move(context_text);
  checkpoint_emitted_ = emitted_.size();
}

std::string StreamDecoder::push(int64_t id) {
  const TokenizerBackend& impl = *backend_;
  impl.check_id(id);
  ids_.push_back(id);
  if (impl.is_skipped(id, options_)) return {};
  window_.push_back(impl.id_to_token(id));
  const std::string text = impl.decode_tokens(window_, options_);
  const size_t stable = impl.stable_length(window_, text, options_);
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
  const std::string text = backend_->decode_tokens(window_, options_);
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
