// What a streamed answer may send so far, so that the concatenated stream equals the unary
// answer: the official response is stripped and cut at a stop string, so leading whitespace is
// dropped and trailing whitespace or a possible stop-string prefix is held back until the text
// that follows decides it. Whitespace is Python's (str.strip), not only ASCII.
#pragma once

#include <string>
#include <vector>

namespace internvl::server {

class StreamText {
 public:
  explicit StreamText(std::vector<std::string> stop_strings);

  // Takes a decoded piece; returns the text that can be sent now. Nothing from a whole stop
  // string on is ever returned, even if the caller pushes past it.
  std::string push(const std::string& piece);
  // At the end: what the final answer `response` has beyond what was sent (empty when the
  // stream already holds it all or has diverged from it).
  std::string finish(const std::string& response);
  const std::string& sent() const { return sent_; }

 private:
  std::vector<std::string> stops_;
  std::string pending_;
  std::string sent_;
  bool started_ = false;  // a non-whitespace character was seen
  bool stopped_ = false;  // a whole stop string was seen (or finish was called)
};

}  // namespace internvl::server
