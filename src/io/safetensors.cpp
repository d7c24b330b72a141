// safetensors reader. Layout of a file (https://github.com/huggingface/safetensors, "Format"):
//   [8 bytes: little-endian u64 N][N bytes: JSON header][data section]
// The header maps tensor names to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative
// to the start of the data section) plus an optional "__metadata__" string->string map.
// Everything in the header is validated against the file size before the file is mapped, so a
// truncated or corrupt file is a CheckpointError, never a SIGBUS or an out-of-bounds read.
#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <utility>

#include "common/check.h"

namespace internvl::io {

namespace {

struct DTypeInfo {
  DType dtype;
  const char* name;
  std::size_t size;
};

constexpr DTypeInfo kDTypes[] = {
    {DType::BOOL, "BOOL", 1},       {DType::U8, "U8", 1},           {DType::I8, "I8", 1},
    {DType::I16, "I16", 2},         {DType::U16, "U16", 2},         {DType::I32, "I32", 4},
    {DType::U32, "U32", 4},         {DType::I64, "I64", 8},         {DType::U64, "U64", 8},
    {DType::F16, "F16", 2},         {DType::BF16, "BF16", 2},       {DType::F32, "F32", 4},
    {DType::F64, "F64", 8},         {DType::F8_E4M3, "F8_E4M3", 1}, {DType::F8_E5M2, "F8_E5M2", 1},
};

const DTypeInfo* find_dtype(const std::string& name) {
  for (const auto& info : kDTypes) {
    if (name == info.name) return &info;
  }
  return nullptr;
}

const DTypeInfo& dtype_info(DType dtype) {
  for (const auto& info : kDTypes) {
    if (info.dtype == dtype) return info;
  }
  INTERNVL_THROW(CheckpointError, "unknown safetensors dtype enum value ", static_cast<int>(dtype));
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::ostringstream out;
  out << '[';
  for (std::size_t i = 0; i < shape.size(); ++i) out << (i ? "," : "") << shape[i];
  out << ']';
  return out.str();
}

// Closes a file descriptor on scope exit.
struct FdGuard {
  int fd = -1;
  ~FdGuard() {
    if (fd >= 0) ::close(fd);
  }
};

// Reads exactly `size` bytes at `offset`; false on a short read or an error.
bool read_exact(int fd, void* out, std::size_t size, off_t offset) {
  auto* dst = static_cast<char*>(out);
  while (size > 0) {
    const ssize_t got = ::pread(fd, dst, size, offset);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    dst += got;
    size -= static_cast<std::size_t>(got);
    offset += got;
  }
  return true;
}

// A non-negative JSON integer that fits in uint64, or throws with `what` in the message.
uint64_t json_non_negative(const nlohmann::json& value, const std::string& path, const std::string& tensor,
                           const char* what) {
  if (value.is_number_unsigned()) return value.get<uint64_t>();
  if (value.is_number_integer()) {
    const auto v = value.get<int64_t>();
    INTERNVL_CHECK(v >= 0, CheckpointError, "safetensors file ", path, ": tensor '", tensor, "': negative ", what,
                   " ", v);
    return static_cast<uint64_t>(v);
  }
  INTERNVL_THROW(CheckpointError, "safetensors file ", path, ": tensor '", tensor, "': ", what,
                 " must be a non-negative integer, got ", value.dump());
}

}  // namespace

std::size_t dtype_size(DType dtype) { return dtype_info(dtype).size; }

const char* dtype_name(DType dtype) { return dtype_info(dtype).name; }

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (const auto d : shape) n *= d;
  return n;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  const auto fail = [&](auto&&... parts) {
    INTERNVL_THROW(CheckpointError, "safetensors file ", path_, ": ", parts...);
  };

  FdGuard fd{::open(path_.c_str(), O_RDONLY | O_CLOEXEC)};
  if (fd.fd < 0) fail("cannot open: ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd.fd, &st) != 0) fail("cannot stat: ", std::strerror(errno));
  if (!S_ISREG(st.st_mode)) fail("not a regular file");
  const auto file_size = static_cast<uint64_t>(st.st_size);
  if (file_size < 8) fail("file is ", file_size, " bytes, too small for the 8-byte header length");

  unsigned char len_bytes[8];
  if (!read_exact(fd.fd, len_bytes, 8, 0)) fail("cannot read the header length");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | len_bytes[i];  // little-endian
  if (header_len > kMaxHeaderBytes) {
    fail("header length ", header_len, " exceeds the ", kMaxHeaderBytes, "-byte limit (corrupt file?)");
  }
  if (8 + header_len > file_size) {
    fail("header length ", header_len, " runs past the end of the ", file_size, "-byte file (truncated?)");
  }
  const uint64_t data_size = file_size - 8 - header_len;

  std::string header_text(static_cast<std::size_t>(header_len), '\0');
  if (header_len > 0 && !read_exact(fd.fd, header_text.data(), header_text.size(), 8)) {
    fail("cannot read the ", header_len, "-byte header");
  }
  nlohmann::json header;
  // nlohmann keeps the last of two equal keys silently; a repeated tensor name is corrupt.
  std::string duplicate;
  std::set<std::string> top_keys;
  const auto find_duplicates = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    if (event == nlohmann::json::parse_event_t::key && depth == 1 && duplicate.empty() &&
        !top_keys.insert(parsed.get<std::string>()).second) {
      duplicate = parsed.get<std::string>();
    }
    return true;
  };
  try {
    header = nlohmann::json::parse(header_text, find_duplicates);
  } catch (const nlohmann::json::exception& e) {
    fail("invalid JSON header: ", e.what());
  }
  if (!duplicate.empty()) fail("tensor name '", duplicate, "' appears twice in the header");
  if (!header.is_object()) fail("the JSON header is not an object");

  struct Range {
    uint64_t begin, end;
    const std::string* name;
  };
  std::vector<Range> ranges;
  std::map<std::string, std::pair<uint64_t, uint64_t>> offsets;  // name -> [begin, end)

  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const auto& entry = it.value();
    if (name == "__metadata__") {
      if (!entry.is_object()) fail("__metadata__ must be an object of strings");
      for (auto m = entry.begin(); m != entry.end(); ++m) {
        if (!m.value().is_string()) fail("__metadata__ value for '", m.key(), "' is not a string");
        metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const auto bad = [&](auto&&... parts) { fail("tensor '", name, "': ", parts...); };
    if (!entry.is_object()) bad("header entry is not an object");

    const auto dtype_it = entry.find("dtype");
    if (dtype_it == entry.end() || !dtype_it->is_string()) bad("missing or non-string \"dtype\"");
    const DTypeInfo* info = find_dtype(dtype_it->get<std::string>());
    if (info == nullptr) bad("unknown dtype \"", dtype_it->get<std::string>(), "\"");

    const auto shape_it = entry.find("shape");
    if (shape_it == entry.end() || !shape_it->is_array()) bad("missing or non-array \"shape\"");
    TensorView view;
    view.name = name;
    view.dtype = info->dtype;
    // numel * element size, checked for overflow at every step.
    uint64_t nbytes = info->size;
    bool overflow = false;
    for (const auto& dim : *shape_it) {
      const uint64_t d = json_non_negative(dim, path_, name, "shape dimension");
      if (d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) bad("shape dimension ", d, " too large");
      view.shape.push_back(static_cast<int64_t>(d));
      uint64_t product = 0;
      if (__builtin_mul_overflow(nbytes, d, &product)) overflow = true;
      nbytes = product;
    }
    if (overflow) bad("shape ", shape_string(view.shape), " overflows the byte count");

    const auto off_it = entry.find("data_offsets");
    if (off_it == entry.end() || !off_it->is_array() || off_it->size() != 2) {
      bad("\"data_offsets\" must be an array [begin, end]");
    }
    const uint64_t begin = json_non_negative((*off_it)[0], path_, name, "data offset");
    const uint64_t end = json_non_negative((*off_it)[1], path_, name, "data offset");
    if (begin > end) bad("data_offsets [", begin, ", ", end, "] have begin > end");
    if (end > data_size) {
      bad("data_offsets [", begin, ", ", end, "] run past the ", data_size, "-byte data section (truncated?)");
    }
    if (end - begin != nbytes) {
      bad("data_offsets span ", end - begin, " bytes but ", dtype_it->get<std::string>(), " ",
          shape_string(view.shape), " needs ", nbytes);
    }
    view.nbytes = static_cast<std::size_t>(nbytes);
    offsets[name] = {begin, end};
    auto [pos, inserted] = tensors_.emplace(name, std::move(view));
    ranges.push_back({begin, end, &pos->first});
  }

  // Like the reference implementation (safetensors' `validate`), the non-empty byte ranges must
  // tile the data section exactly: no overlap (two tensors sharing bytes), no gap and no trailing
  // bytes (a writer that lost track of its offsets). Empty tensors touch no bytes and are exempt.
  std::sort(ranges.begin(), ranges.end(),
            [](const Range& a, const Range& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  const Range* prev = nullptr;
  uint64_t expected = 0;
  for (const auto& r : ranges) {
    if (r.begin == r.end) continue;
    if (r.begin < expected) {
      fail("tensors '", *prev->name, "' [", prev->begin, ", ", prev->end, ") and '", *r.name, "' [", r.begin, ", ",
           r.end, ") overlap");
    }
    if (r.begin > expected) {
      if (prev == nullptr) fail("tensor '", *r.name, "' starts at ", r.begin, ": the data section's first ", r.begin,
                                " bytes belong to no tensor (gap)");
      fail("gap of ", r.begin - expected, " bytes between tensors '", *prev->name, "' (ends at ", prev->end, ") and '",
           *r.name, "' (starts at ", r.begin, ")");
    }
    expected = r.end;
    prev = &r;
  }
  if (expected != data_size) {
    fail(data_size - expected, " trailing bytes after the last tensor (the data section is ", data_size,
         " bytes, the tensors cover ", expected, ")");
  }

  // Map the whole file read-only. Every range was checked against the size fstat reported.
  void* map = ::mmap(nullptr, static_cast<std::size_t>(file_size), PROT_READ, MAP_PRIVATE, fd.fd, 0);
  if (map == MAP_FAILED) fail("mmap failed: ", std::strerror(errno));
  map_ = map;
  map_size_ = static_cast<std::size_t>(file_size);
  const auto* data = static_cast<const std::byte*>(map_) + 8 + header_len;
  for (auto& [name, view] : tensors_) view.data = data + offsets[name].first;
}

void release_pages(const TensorView& view) {
  if (view.data == nullptr || view.nbytes == 0) return;
  static const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<std::uintptr_t>(view.data);
  // Only pages wholly inside the view: a neighbour's bytes may still be needed.
  const std::uintptr_t first = (begin + page - 1) / page * page;
  const std::uintptr_t last = (begin + view.nbytes) / page * page;
  // A read-only private mapping has no dirty pages: dropping them loses nothing. Advice only.
  if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

SafetensorsFile::~SafetensorsFile() {
  if (map_ != nullptr) ::munmap(map_, map_size_);
}

bool SafetensorsFile::contains(const std::string& name) const { return tensors_.count(name) != 0; }

const TensorView& SafetensorsFile::tensor(const std::string& name) const {
  const auto it = tensors_.find(name);
  INTERNVL_CHECK(it != tensors_.end(), CheckpointError, "safetensors file ", path_, ": no tensor '", name, "'");
  return it->second;
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  out.reserve(tensors_.size());
  for (const auto& entry : tensors_) out.push_back(entry.first);
  return out;
}

// ---- Checkpoint ----------------------------------------------------------------------------

namespace {

constexpr const char* kIndexFile = "model.safetensors.index.json";
constexpr const char* kSingleFile = "model.safetensors";

// POSIX rather than std::filesystem: the LibTorch wheel (built with a newer GCC) exports its own
// std::filesystem symbols, which interpose on the system libstdc++'s and are not ABI-safe to mix
// (fs::remove_all crashes in a test binary linked to libtorch).
enum class PathKind { kMissing, kDirectory, kOther };

PathKind path_kind(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return PathKind::kMissing;
  return S_ISDIR(st.st_mode) ? PathKind::kDirectory : PathKind::kOther;
}

std::string join(const std::string& dir, const std::string& name) {
  if (dir.empty() || dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

nlohmann::json read_index(const std::string& index_path) {
  std::ifstream in(index_path, std::ios::binary);
  INTERNVL_CHECK(in.good(), CheckpointError, "cannot open shard index ", index_path);
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    INTERNVL_THROW(CheckpointError, "shard index ", index_path, ": invalid JSON: ", e.what());
  }
}

}  // namespace

Checkpoint::Checkpoint(const std::string& path) : Checkpoint(path, nullptr) {}

Checkpoint::Checkpoint(const std::string& path, std::vector<std::string>* missing_shards) : path_(path) {
  const PathKind kind = path_kind(path);
  if (kind == PathKind::kMissing) INTERNVL_THROW(CheckpointError, "checkpoint path does not exist: ", path);

  const auto add_file = [&](std::unique_ptr<SafetensorsFile> file) {
    for (const auto& name : file->names()) {
      const auto [it, inserted] = owner_.emplace(name, file.get());
      INTERNVL_CHECK(inserted, CheckpointError, "checkpoint ", path_, ": tensor '", name, "' appears in both ",
                     it->second->path(), " and ", file->path());
    }
    files_.push_back(std::move(file));
  };

  if (kind != PathKind::kDirectory) {
    add_file(std::make_unique<SafetensorsFile>(path));
    return;
  }

  const std::string index_str = join(path, kIndexFile);
  if (path_kind(index_str) != PathKind::kMissing) {
    const auto index = read_index(index_str);
    INTERNVL_CHECK(index.is_object(), CheckpointError, "shard index ", index_str, ": not a JSON object");
    const auto wm = index.find("weight_map");
    INTERNVL_CHECK(wm != index.end() && wm->is_object(), CheckpointError, "shard index ", index_str,
                   ": missing or non-object \"weight_map\"");

    // Open each distinct shard once, in name order. Shard names are relative to the directory.
    std::map<std::string, const SafetensorsFile*> shards;
    for (auto it = wm->begin(); it != wm->end(); ++it) {
      INTERNVL_CHECK(it.value().is_string(), CheckpointError, "shard index ", index_str, ": weight_map entry '",
                     it.key(), "' is not a file name");
      const auto shard = it.value().get<std::string>();
      // Shards live in the checkpoint directory: no absolute paths, no "..", no NUL (which would
      // silently cut the name short), so an index cannot make us open files elsewhere.
      const bool escapes = shard == ".." || shard.rfind("../", 0) == 0 || shard.find("/../") != std::string::npos ||
                           (shard.size() >= 3 && shard.compare(shard.size() - 3, 3, "/..") == 0);
      INTERNVL_CHECK(!shard.empty() && shard.front() != '/' && !escapes && shard.find('\0') == std::string::npos,
                     CheckpointError, "shard index ", index_str, ": weight_map entry '", it.key(),
                     "' names an invalid shard \"", shard, "\" (must be a file inside the checkpoint directory)");
      shards.emplace(shard, nullptr);
    }
    for (auto& [shard, file_ptr] : shards) {
      if (missing_shards != nullptr && path_kind(join(path, shard)) == PathKind::kMissing) {
        missing_shards->push_back(shard);
        continue;
      }
      std::unique_ptr<SafetensorsFile> file;
      try {
        file = std::make_unique<SafetensorsFile>(join(path, shard));
      } catch (const CheckpointError& e) {
        INTERNVL_THROW(CheckpointError, e.what(), " (shard \"", shard, "\" listed in ", index_str, ")");
      }
      file_ptr = file.get();
      add_file(std::move(file));
    }
    // Every key the index promises must be in the shard it names. Tensors a shard holds beyond
    // the index remain reachable (they are in owner_ already).
    for (auto it = wm->begin(); it != wm->end(); ++it) {
      const auto* shard = shards.at(it.value().get<std::string>());
      if (shard == nullptr) continue;  // a missing shard the caller asked to be told about
      INTERNVL_CHECK(shard->contains(it.key()), CheckpointError, "shard index ", index_str, ": tensor '", it.key(),
                     "' is not in its shard ", shard->path());
    }
    return;
  }

  const std::string single = join(path, kSingleFile);
  if (path_kind(single) != PathKind::kMissing) {
    add_file(std::make_unique<SafetensorsFile>(single));
    return;
  }
  INTERNVL_THROW(CheckpointError, "no ", kSingleFile, " or ", kIndexFile, " in ", path);
}

bool Checkpoint::contains(const std::string& name) const { return owner_.count(name) != 0; }

const TensorView& Checkpoint::tensor(const std::string& name) const {
  const auto it = owner_.find(name);
  INTERNVL_CHECK(it != owner_.end(), CheckpointError, "checkpoint ", path_, ": no tensor '", name, "'");
  return it->second->tensor(name);
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(owner_.size());
  for (const auto& entry : owner_) out.push_back(entry.first);
  return out;
}

}  // namespace internvl::io
