// safetensors reader: memory-mapped, validated before any data is touched, sharded via
// model.safetensors.index.json. Tensors are zero-copy views until converted.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace internvl::io {

// Every dtype the safetensors format defines.
enum class DType { BOOL, U8, I8, I16, U16, I32, U32, I64, U64, F16, BF16, F32, F64, F8_E4M3, F8_E5M2 };

std::size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);  // "BF16", ...

// A view into a mapped file; valid while the owning SafetensorsFile lives.
struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const std::byte* data = nullptr;
  std::size_t nbytes = 0;
  int64_t numel() const;
};

// Drops the view's whole pages from this process's mapping (they stay in the page cache and are
// read again if touched): once a tensor is copied out, a load keeps no file pages resident, so
// peak RSS is the weights plus one tensor rather than the weights plus the file.
void release_pages(const TensorView& view);

// One .safetensors file, mmapped read-only. Throws CheckpointError naming the file (and tensor).
class SafetensorsFile {
 public:
  static constexpr std::size_t kMaxHeaderBytes = 100u << 20;  // the format's own 100 MB cap

  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  bool contains(const std::string& name) const;
  const TensorView& tensor(const std::string& name) const;  // throws CheckpointError if absent
  std::vector<std::string> names() const;                   // sorted
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  std::string path_;
  void* map_ = nullptr;
  std::size_t map_size_ = 0;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// All tensors of a checkpoint directory: model.safetensors, or the shards listed by
// model.safetensors.index.json. Also accepts the path of a single .safetensors file.
class Checkpoint {
 public:
  explicit Checkpoint(const std::string& path);
  // As above, except that shard files the index names but the folder lacks are listed in
  // `*missing_shards` (name order) instead of failing: inspect_checkpoint reports the rest.
  Checkpoint(const std::string& path, std::vector<std::string>* missing_shards);

  bool contains(const std::string& name) const;
  const TensorView& tensor(const std::string& name) const;  // throws CheckpointError naming the key
  std::vector<std::string> names() const;                   // sorted
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const SafetensorsFile*> owner_;
};

}  // namespace internvl::io
