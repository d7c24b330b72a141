// internvl-retrieve: writing float32 matrices as a safetensors file.
#include "safetensors_out.h"

#include <cstdint>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string_view>

#include "cli.h"
#include "util.h"

namespace retrieve {

namespace {

bool host_is_little_endian() {
  const uint16_t probe = 1;
  unsigned char first = 0;
  std::memcpy(&first, &probe, 1);
  return first == 1;
}

}  // namespace

void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, const internvl::Matrix*>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  if (!host_is_little_endian()) throw ToolError("writing safetensors needs a little-endian host");
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  std::vector<std::string_view> parts;
  uint64_t offset = 0;
  for (const auto& [name, matrix] : tensors) {
    const uint64_t bytes = static_cast<uint64_t>(matrix->size()) * sizeof(float);
    header[name] = {{"dtype", "F32"},
                    {"shape", {static_cast<int64_t>(matrix->rows()), static_cast<int64_t>(matrix->cols())}},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string json = header.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  json.append((8 - json.size() % 8) % 8, ' ');
  unsigned char length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<unsigned char>((static_cast<uint64_t>(json.size()) >> (8 * i)) & 0xff);

  parts.emplace_back(reinterpret_cast<const char*>(length), sizeof(length));
  parts.emplace_back(json);
  for (const auto& [name, matrix] : tensors) {  // Matrix is row-major: rows are contiguous
    parts.emplace_back(reinterpret_cast<const char*>(matrix->data()), matrix->size() * sizeof(float));
  }
  write_file_atomically(path, parts);
}

}  // namespace retrieve
