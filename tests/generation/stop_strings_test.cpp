// StopStringMatcher: whatever way the text is cut into pieces, the streamed text is exactly the
// text before the first stop string, and nothing of a stop string is ever streamed.
#include <gtest/gtest.h>

#include <random>

#include "generation/stop_strings.h"

using internvl::generation::StopStringMatcher;

namespace {

// Generation stops after the first piece (token) with which some stop string has appeared; the
// answer ends where the earliest stop string present at that moment starts.
std::string first_cut(const std::vector<std::string>& pieces, const std::vector<std::string>& stops, bool& found) {
  std::string seen;
  for (const auto& piece : pieces) {
    seen += piece;
    size_t cut = std::string::npos;
    for (const auto& stop : stops) cut = std::min(cut, seen.find(stop));
    if (cut != std::string::npos) {
      found = true;
      return seen.substr(0, cut);
    }
  }
  found = false;
  return seen;
}

TEST(StopStringMatcher, StreamsExactlyTheTextBeforeTheFirstStop) {
  std::mt19937 rng(11);
  const std::string alphabet = "ab c\n";
  for (int trial = 0; trial < 3000; ++trial) {
    std::string text;
    const int length = std::uniform_int_distribution<int>(0, 40)(rng);
    for (int i = 0; i < length; ++i) text += alphabet[rng() % alphabet.size()];
    std::vector<std::string> stops;
    const int count = std::uniform_int_distribution<int>(0, 3)(rng);
    for (int s = 0; s < count; ++s) {
      std::string stop;
      const int n = std::uniform_int_distribution<int>(1, 4)(rng);
      for (int i = 0; i < n; ++i) stop += alphabet[rng() % alphabet.size()];
      stops.push_back(stop);
    }
    std::vector<std::string> pieces;
    for (size_t pos = 0; pos < text.size();) {
      const size_t n = std::min(text.size() - pos, static_cast<size_t>(rng() % 5));
      pieces.push_back(text.substr(pos, n));
      pos += n;
    }
    bool expect_stop = false;
    const auto expected = first_cut(pieces, stops, expect_stop);
    StopStringMatcher matcher(stops);
    std::string streamed;
    bool stopped = false;
    for (size_t i = 0; i < pieces.size() && !stopped; ++i) {
      const auto piece = matcher.push(pieces[i]);
      streamed += piece.text;
      stopped = piece.stopped;
      // Never ahead of what may be shown.
      ASSERT_EQ(expected.compare(0, streamed.size(), streamed), 0) << "text '" << text << "' streamed '" << streamed << "'";
    }
    if (!stopped) streamed += matcher.finish();
    EXPECT_EQ(stopped, expect_stop) << text;
    std::string all;
    for (const auto& stop : stops) all += "[" + stop + "]";
    EXPECT_EQ(streamed, expected) << text << " stops " << all;
    EXPECT_EQ(matcher.stopped(), expect_stop);
  }
}

TEST(StopStringMatcher, HoldsBackOnlyWhatCouldStartAStop) {
  StopStringMatcher matcher({"STOP"});
  EXPECT_EQ(matcher.push("hello S").text, "hello ");
  EXPECT_EQ(matcher.push("T").text, "");
  EXPECT_EQ(matcher.push("x").text, "STx");  // not a stop after all
  const auto piece = matcher.push("yST" "OPz");
  EXPECT_TRUE(piece.stopped);
  EXPECT_EQ(piece.text, "y");
  EXPECT_EQ(matcher.push("more").text, "");
  EXPECT_EQ(matcher.finish(), "");
  StopStringMatcher none({});
  EXPECT_EQ(none.push("abc").text, "abc");
}

}  // namespace
