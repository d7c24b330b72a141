// Shared by the command-line tools: "did you mean --xyz?" for a mistyped flag. Header-only and
// standard C++ only, so each tool still builds on nothing but the public API.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

namespace tool_common {

// Optimal string alignment distance (insert, delete, substitute, swap of neighbours): a swapped
// pair of letters is one typo, as people make it.
inline size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

// " (did you mean --xyz?)" for the closest of `known` within distance 2 of `flag` (the first on a
// tie), else "". `flag` may carry "=value"; only the name is compared.
inline std::string did_you_mean(std::string flag, const std::vector<std::string>& known) {
  if (const auto eq = flag.find('='); eq != std::string::npos) flag.resize(eq);
  const std::string* best = nullptr;
  size_t best_distance = 3;
  for (const auto& candidate : known) {
    // Short flags are all a distance 2 from each other: suggesting one would be a guess.
    if (candidate.size() < 4) continue;
    const size_t distance = edit_distance(flag, candidate);
    if (distance < best_distance) {
      best = &candidate;
      best_distance = distance;
    }
  }
  return best == nullptr ? std::string() : " (did you mean " + *best + "?)";
}

}  // namespace tool_common
