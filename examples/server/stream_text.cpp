#include "stream_text.h"

#include <algorithm>
#include <string_view>

// The server is built on the public API only, so it cannot use the library's internal UTF-8 and
// Python-whitespace helpers (src/tokenizer/text_util); this is its own small copy.
namespace internvl::server {
namespace {

// The code points Python's str.isspace() accepts: the unary answer is str.strip()-ed, so the
// stream must drop and hold back exactly these (U+3000 and U+00A0 included, not only ASCII).
bool is_python_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

bool is_continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

enum class Kind { kText, kSpace, kUnfinished };

struct CodePoint {
  Kind kind;
  size_t length;  // bytes, for kSpace
};

// Classifies the code point at text[pos]. Malformed bytes are text (as the answer's strip treats
// them); kUnfinished: the text ends inside a sequence that may still complete.
CodePoint classify(std::string_view text, size_t pos) {
  const auto b0 = static_cast<unsigned char>(text[pos]);
  if (b0 < 0x80) return {is_python_space(b0) ? Kind::kSpace : Kind::kText, 1};
  size_t length = 0;
  char32_t cp = 0;
  char32_t min_value = 0;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    length = 2, cp = b0 & 0x1F, min_value = 0x80;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    length = 3, cp = b0 & 0x0F, min_value = 0x800;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    length = 4, cp = b0 & 0x07, min_value = 0x10000;
  } else {
    return {Kind::kText, 1};
  }
  for (size_t i = 1; i < length; ++i) {
    if (pos + i >= text.size()) return {Kind::kUnfinished, 0};
    if (!is_continuation(text[pos + i])) return {Kind::kText, 1};
    cp = (cp << 6) | (static_cast<unsigned char>(text[pos + i]) & 0x3F);
  }
  const bool valid = cp >= min_value && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
  return {valid && is_python_space(cp) ? Kind::kSpace : Kind::kText, length};
}

// Start of the code point that ends at `end`: back over at most three continuation bytes.
size_t last_start(std::string_view text, size_t end) {
  size_t start = end - 1;
  while (start > 0 && end - start < 4 && is_continuation(text[start])) --start;
  return start;
}

// Bytes at the end of `text` that may still become whitespace or belong to one code point with
// what follows: an unfinished sequence, then the whitespace before it (as Python's rstrip walks).
size_t held_tail(std::string_view text) {
  size_t end = text.size();
  if (end > 0) {
    const size_t start = last_start(text, end);
    if (classify(text, start).kind == Kind::kUnfinished) end = start;
  }
  while (end > 0) {
    const std::string_view head = text.substr(0, end);
    const size_t start = last_start(head, end);
    const auto cp = classify(head, start);
    if (cp.kind != Kind::kSpace || start + cp.length != end) break;
    end = start;
  }
  return text.size() - end;
}

// Length of the longest suffix of `text` that is a proper prefix of one of `stops`.
size_t stop_prefix_suffix(const std::string& text, const std::vector<std::string>& stops) {
  size_t best = 0;
  for (const auto& stop : stops) {
    for (size_t n = std::min(text.size(), stop.size() - 1); n > best; --n) {
      if (text.compare(text.size() - n, n, stop, 0, n) == 0) {
        best = n;
        break;
      }
    }
  }
  return best;
}

std::vector<std::string> without_empty(std::vector<std::string> stops) {
  stops.erase(std::remove(stops.begin(), stops.end(), std::string()), stops.end());
  return stops;
}

}  // namespace

// An empty stop string would match everywhere; the parser refuses them, so ignore any here.
StreamText::StreamText(std::vector<std::string> stop_strings) : stops_(without_empty(std::move(stop_strings))) {}

std::string StreamText::push(const std::string& piece) {
  if (stopped_) return {};
  pending_ += piece;
  if (!started_) {
    size_t skip = 0;
    while (skip < pending_.size()) {
      const auto cp = classify(pending_, skip);
      if (cp.kind != Kind::kSpace) break;
      skip += cp.length;
    }
    pending_.erase(0, skip);
    if (pending_.empty() || classify(pending_, 0).kind == Kind::kUnfinished) return {};
    started_ = true;
  }
  // A whole stop string ends the answer there, even if the caller pushes on past it.
  size_t stop_at = std::string::npos;
  for (const auto& stop : stops_) stop_at = std::min(stop_at, pending_.find(stop));
  if (stop_at != std::string::npos) {
    pending_.resize(stop_at);
    stopped_ = true;
  }
  const size_t keep = std::max(held_tail(pending_), stop_prefix_suffix(pending_, stops_));
  // Never split a UTF-8 sequence: hold back continuation bytes with their lead byte.
  size_t cut = pending_.size() - keep;
  for (int i = 0; i < 3 && cut > 0 && cut < pending_.size() && is_continuation(pending_[cut]); ++i) --cut;
  std::string out = pending_.substr(0, cut);
  pending_.erase(0, cut);
  sent_ += out;
  return out;
}

std::string StreamText::finish(const std::string& response) {
  pending_.clear();
  stopped_ = true;
  if (response.size() <= sent_.size() || response.compare(0, sent_.size(), sent_) != 0) return {};
  std::string rest = response.substr(sent_.size());
  sent_ = response;
  return rest;
}

}  // namespace internvl::server
