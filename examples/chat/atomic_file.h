// internvl-chat: replacing a file atomically (--dump, /save).
#pragma once

#include <string>

namespace chat_tool {

// Writes `bytes` to `path` atomically: a temporary file in the same directory is written,
// fsynced and renamed over `path`, so readers see the old file or the new one, never a part.
// Throws internvl::Error "cannot write <noun> <path>: ..." on failure (no temporary is left).
void write_file_atomically(const std::string& path, const std::string& bytes, const std::string& noun);

}  // namespace chat_tool
