#include "io/safetensors_writer.h"

#include <ATen/ATen.h>

#include <nlohmann/json.hpp>
#include <set>

#include "common/atomic_file.h"
#include "common/check.h"

namespace internvl::io {
namespace {

const char* safetensors_dtype(at::ScalarType type, const std::string& name) {
  switch (type) {
    case at::kBool: return "BOOL";
    case at::kByte: return "U8";
    case at::kChar: return "I8";
    case at::kShort: return "I16";
    case at::kInt: return "I32";
    case at::kLong: return "I64";
    case at::kHalf: return "F16";
    case at::kBFloat16: return "BF16";
    case at::kFloat: return "F32";
    case at::kDouble: return "F64";
    default: INTERNVL_THROW(InvalidArgument, "write_safetensors: tensor '", name, "' has unsupported dtype ", type);
  }
}

}  // namespace

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<at::Tensor> data;
  std::set<std::string> seen;
  std::size_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    INTERNVL_CHECK(!name.empty() && name != "__metadata__", InvalidArgument, "write_safetensors: bad tensor name '",
                   name, "'");
    INTERNVL_CHECK(seen.insert(name).second, InvalidArgument, "write_safetensors: duplicate tensor name '", name, "'");
    INTERNVL_CHECK(tensor.defined(), InvalidArgument, "write_safetensors: tensor '", name, "' is undefined");
    auto cpu = tensor.detach().to(at::kCPU).contiguous();
    const std::size_t bytes = cpu.numel() * cpu.element_size();
    header[name] = {{"dtype", safetensors_dtype(cpu.scalar_type(), name)},
                    {"shape", cpu.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    data.push_back(std::move(cpu));
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keep the data 8-byte aligned
  const uint64_t length = text.size();
  unsigned char length_bytes[8];
  for (int i = 0; i < 8; ++i) length_bytes[i] = static_cast<unsigned char>(length >> (8 * i));
  write_file_atomically(path, [&](int fd) {
    write_all(fd, length_bytes, 8, path);
    write_all(fd, text.data(), text.size(), path);
    for (const auto& t : data) write_all(fd, t.data_ptr(), t.numel() * t.element_size(), path);
  });
}

}  // namespace internvl::io
