// Embedding index: L2-normalised float32 rows with string ids, brute-force top-k by matrix
// product, persisted as safetensors (+ JSON metadata naming model, mode and dimension).
// Format: docs/index_format.md.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace internvl::retrieval {

struct IndexInfo {
  std::string model_id;  // identifies the checkpoint that produced the embeddings
  std::string mode;      // "c" or "g"
  int64_t dim = 0;
  bool operator==(const IndexInfo& other) const {
    return model_id == other.model_id && mode == other.mode && dim == other.dim;
  }
};

struct Hit {
  int64_t row = 0;
  float score = 0;  // cosine similarity
};

class EmbeddingIndex {
 public:
  static constexpr const char* kFormat = "internvl-embedding-index";
  static constexpr int kVersion = 1;

  explicit EmbeddingIndex(IndexInfo info);

  const IndexInfo& info() const { return info_; }
  int64_t size() const { return static_cast<int64_t>(ids_.size()); }
  const std::vector<std::string>& ids() const { return ids_; }
  bool contains(const std::string& id) const { return rows_.count(id) != 0; }
  int64_t row_of(const std::string& id) const;  // throws InvalidArgument when absent

  // embeddings [N, dim]; rows are L2-normalised and stored as float32 on CPU. An id already in
  // the index has its row replaced. Ids must be unique within the call.
  void add(const std::vector<std::string>& ids, const at::Tensor& embeddings);
  // Removes ids (absent ids are ignored); returns how many were removed.
  int64_t remove(const std::vector<std::string>& ids);

  at::Tensor embeddings() const;  // [N, dim] normalised float32

  // queries [M, dim] (normalised here) -> for each query the min(k, N) best rows, best first.
  std::vector<std::vector<Hit>> search(const at::Tensor& queries, int64_t k) const;

  void save(const std::string& path) const;  // atomic
  static EmbeddingIndex load(const std::string& path);
  // Throws InvalidArgument naming the first field that differs.
  void check_compatible(const IndexInfo& expected) const;

 private:
  void materialise() const;

  IndexInfo info_;
  std::vector<std::string> ids_;
  std::unordered_map<std::string, int64_t> rows_;
  mutable at::Tensor matrix_;                   // [N, dim] once materialised
  mutable std::vector<at::Tensor> pending_;     // appended blocks not yet concatenated
  // Const methods (search, embeddings, save) may run on several threads at once; they all
  // materialise first, which is the only mutation they do. Non-const methods need exclusive use.
  std::unique_ptr<std::mutex> materialise_mutex_ = std::make_unique<std::mutex>();
};

}  // namespace internvl::retrieval
