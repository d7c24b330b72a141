// internvl-chat: the safetensors writer of --dump (8-byte little-endian header length N, N bytes
// of JSON padded with spaces to a multiple of 8, then the raw little-endian tensor data).
#include "dump.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace chat_tool {

namespace {

bool host_is_little_endian() {
  const uint16_t probe = 1;
  unsigned char first = 0;
  std::memcpy(&first, &probe, 1);
  return first == 1;
}

// Appends `count` values of `size` bytes each, in little-endian byte order.
void append_le(std::string& out, const void* data, std::size_t count, std::size_t size) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  if (host_is_little_endian()) {
    out.append(reinterpret_cast<const char*>(bytes), count * size);
    return;
  }
  for (std::size_t i = 0; i < count; ++i)
    for (std::size_t b = size; b-- > 0;) out.push_back(static_cast<char>(bytes[i * size + b]));
}

struct Entry {
  const char* name;
  const char* dtype;
  std::size_t count;
  std::size_t element_size;
  const void* data;
};

std::string serialise(const std::vector<Entry>& entries) {
  std::string header = "{\"__metadata__\":{\"format\":\"pt\"}";
  std::size_t offset = 0;
  for (const auto& e : entries) {
    const std::size_t end = offset + e.count * e.element_size;
    header += ",\"" + std::string(e.name) + "\":{\"dtype\":\"" + e.dtype + "\",\"shape\":[" + std::to_string(e.count) +
              "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(end) + "]}";
    offset = end;
  }
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');
  std::string out;
  out.reserve(8 + header.size() + offset);
  const uint64_t length = header.size();
  append_le(out, &length, 1, sizeof(length));
  out += header;
  for (const auto& e : entries) append_le(out, e.data, e.count, e.element_size);
  return out;
}

std::string directory_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

[[noreturn]] void fail(const std::string& path, const std::string& what, int error) {
  throw internvl::Error("cannot write dump " + path + ": " + what + ": " + std::strerror(error));
}

}  // namespace

void write_dump(const std::string& path, const internvl::ChatResult& result) {
  static_assert(sizeof(float) == 4, "F32 needs 4-byte floats");
  const std::string bytes = serialise({
      {"input_ids", "I64", result.input_ids.size(), sizeof(int64_t), result.input_ids.data()},
      {"output_ids", "I64", result.output_ids.size(), sizeof(int64_t), result.output_ids.data()},
      {"first_logits", "F32", result.first_logits.size(), sizeof(float), result.first_logits.data()},
  });

  const std::string directory = directory_of(path);
  const auto slash = path.find_last_of('/');
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  if (base.empty()) throw internvl::Error("cannot write dump " + path + ": not a file name");
  std::string temp = (directory == "/" ? "" : directory) + "/." + base + ".XXXXXX";
  std::vector<char> name(temp.begin(), temp.end());
  name.push_back('\0');
  const int fd = ::mkstemp(name.data());
  if (fd < 0) fail(path, "cannot create a temporary file in " + directory, errno);
  temp.assign(name.data());
  auto abandon = [&](const std::string& what) {
    const int error = errno;
    ::close(fd);
    ::unlink(temp.c_str());
    fail(path, what, error);
  };
  // mkstemp creates 0600; give the file the permissions an ordinary create would.
  const mode_t mask = ::umask(0);
  ::umask(mask);
  if (::fchmod(fd, 0666 & ~mask) != 0) abandon("fchmod");
  std::size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + written, bytes.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) errno = EIO;
    if (n <= 0) abandon("write");
    written += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) abandon("fsync");
  if (::close(fd) != 0) {
    const int error = errno;
    ::unlink(temp.c_str());
    fail(path, "close", error);
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const int error = errno;
    ::unlink(temp.c_str());
    fail(path, "rename", error);
  }
  // Make the rename itself durable (best effort).
  const int dir_fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
}

}  // namespace chat_tool
