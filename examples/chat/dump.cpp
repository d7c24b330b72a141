// internvl-chat: the safetensors writer of --dump (8-byte little-endian header length N, N bytes
// of JSON padded with spaces to a multiple of 8, then the raw little-endian tensor data).
#include "dump.h"

#include "atomic_file.h"

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

}  // namespace

void write_dump(const std::string& path, const internvl::ChatResult& result) {
  static_assert(sizeof(float) == 4, "F32 needs 4-byte floats");
  const std::string bytes = serialise({
      {"input_ids", "I64", result.input_ids.size(), sizeof(int64_t), result.input_ids.data()},
      {"output_ids", "I64", result.output_ids.size(), sizeof(int64_t), result.output_ids.data()},
      {"first_logits", "F32", result.first_logits.size(), sizeof(float), result.first_logits.data()},
  });

  write_file_atomically(path, bytes, "dump");
}

}  // namespace chat_tool
