// Files the library writes appear whole or not at all: written to a temporary file in the same
// directory, flushed to disk, then renamed over the destination.
#pragma once

#include <functional>
#include <string>

namespace internvl {

// `write` receives a file descriptor open for writing; it must write everything (use write_all).
// Throws Error naming the path on any failure and leaves no temporary file behind.
void write_file_atomically(const std::string& path, const std::function<void(int fd)>& write);
void write_all(int fd, const void* data, std::size_t size, const std::string& path);

}  // namespace internvl
