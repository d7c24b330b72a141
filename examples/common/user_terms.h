// Shared by the command-line tools: library errors name API fields ("LoadOptions.device"), but a
// tool's user set a flag. Rewrites the library's wording for the fields the tools fill from their
// common flags (--device, --dtype, --threads, --max-batch-size). Header-only, standard C++ only.
#pragma once

#include <string>
#include <utility>

namespace tool_common {

// `message` with each known API phrase replaced by the flag a user gave; other text is kept.
inline std::string in_user_terms(std::string message) {
  static const std::pair<const char*, const char*> kTerms[] = {
      {"LoadOptions.device is cuda but no CUDA device is available",
       "--device cuda: no CUDA device is available (no GPU, or a build without CUDA); use --device cpu"},
      {"LoadOptions.device_index must be >= 0, got ", "--device cuda:N needs N >= 0, got "},
      {"LoadOptions.num_threads must be >= 0, got ", "--threads must be >= 0, got "},
      {"LoadOptions.max_batch_size must be positive, got ", "--max-batch-size must be positive, got "},
      {"use a smaller dtype (LoadOptions.dtype) or another device", "use a smaller --dtype or another --device"},
      // No tool has a flag for these two; the environment variable is what a user can set.
      {"set LoadOptions.check_memory = false to try anyway",
       "set INTERNVL_MEMORY_LIMIT_BYTES=<bytes> (replaces the measured figure) to try anyway"},
      {", see LoadOptions.max_image_pixels)", ")"},
  };
  for (const auto& [api, user] : kTerms) {
    for (auto at = message.find(api); at != std::string::npos;
         at = message.find(api, at + std::char_traits<char>::length(user))) {
      message.replace(at, std::char_traits<char>::length(api), user);
    }
  }
  return message;
}

}  // namespace tool_common
