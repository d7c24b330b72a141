#include "generation/stop_strings.h"

#include <algorithm>

namespace internvl::generation {

StopStringMatcher::StopStringMatcher(std::vector<std::string> stops) {
  for (auto& stop : stops) {
    if (!stop.empty()) stops_.push_back(std::move(stop));
  }
}

StopStringMatcher::Piece StopStringMatcher::push(const std::string& text) {
  Piece piece;
  if (stopped_) return piece;
  held_ += text;
  if (stops_.empty()) {
    piece.text.swap(held_);
    return piece;
  }
  // held_ never contains a whole stop string (it would have stopped), so a match lies at least
  // partly in the new text: the earliest one wins.
  size_t first = std::string::npos;
  for (const auto& stop : stops_) first = std::min(first, held_.find(stop));
  if (first != std::string::npos) {
    stopped_ = true;
    piece.stopped = true;
    piece.text = held_.substr(0, first);
    held_.clear();
    return piece;
  }
  // Keep the longest tail that is a proper prefix of some stop string.
  size_t keep = 0;
  for (const auto& stop : stops_) {
    for (size_t n = std::min(stop.size() - 1, held_.size()); n > keep; --n) {
      if (held_.compare(held_.size() - n, n, stop, 0, n) == 0) {
        keep = n;
        break;
      }
    }
  }
  piece.text = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return piece;
}

std::string StopStringMatcher::finish() {
  std::string rest;
  if (!stopped_) rest.swap(held_);
  held_.clear();
  return rest;
}

}  // namespace internvl::generation
