// Incremental stop-string matching for streamed text: each piece is checked only against what
// can still complete a match (the held-back tail plus the new piece), and text that might be the
// start of a stop string is held back until it is known not to be, so no stop string is ever
// streamed in part.
#pragma once

#include <string>
#include <vector>

namespace internvl::generation {

class StopStringMatcher {
 public:
  // Empty stop strings are ignored (the facade refuses them earlier).
  explicit StopStringMatcher(std::vector<std::string> stops);

  struct Piece {
    std::string text;      // safe to show: never part of a stop string
    bool stopped = false;  // a stop string completed; `text` is what came before it
  };
  // Feeds the next decoded text. After a stop, further pushes return nothing.
  Piece push(const std::string& text);
  // At the end of generation: the held-back text (it never completed a stop string).
  std::string finish();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
};

}  // namespace internvl::generation
