#include "stream_text.h"

#include <algorithm>

namespace internvl::server {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

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

}  // namespace

std::string StreamText::push(const std::string& piece) {
  pending_ += piece;
  if (!started_) {
    size_t skip = 0;
    while (skip < pending_.size() && is_space(pending_[skip])) ++skip;
    pending_.erase(0, skip);
    if (pending_.empty()) return {};
    started_ = true;
  }
  size_t keep = 0;
  while (keep < pending_.size() && is_space(pending_[pending_.size() - 1 - keep])) ++keep;
  keep = std::max(keep, stop_prefix_suffix(pending_, stops_));
  // Never split a UTF-8 sequence: hold back continuation bytes with their lead byte.
  size_t cut = pending_.size() - keep;
  while (cut > 0 && cut < pending_.size() && (static_cast<unsigned char>(pending_[cut]) & 0xC0) == 0x80) --cut;
  std::string out = pending_.substr(0, cut);
  pending_.erase(0, cut);
  sent_ += out;
  return out;
}

std::string StreamText::finish(const std::string& response) {
  pending_.clear();
  if (response.size() <= sent_.size() || response.compare(0, sent_.size(), sent_) != 0) return {};
  std::string rest = response.substr(sent_.size());
  sent_ = response;
  return rest;
}

}  // namespace internvl::server
