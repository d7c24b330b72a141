// Approximate search over FAISS (IVF-Flat or HNSW on L2-normalised rows; scores are cosines) for
// collections past what brute force serves. Built only with INTERNVL_WITH_FAISS.
// Persistence: FAISS's own writer for the index plus a JSON sidecar (`<path>.json`) with our
// metadata (model_id, mode, dim, ids, kind); both written atomically.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "retrieval/embedding_index.h"

namespace faiss {
struct Index;
}

namespace internvl::retrieval {

struct FaissOptions {
  std::string kind = "hnsw";  // "ivf-flat" | "hnsw"
  int64_t nlist = 1024;       // IVF cells (IVF-Flat); trained on the first add when untrained
  int64_t nprobe = 32;        // IVF cells visited per query
  int64_t hnsw_m = 32;        // HNSW graph degree
  int64_t ef_search = 128;    // HNSW search breadth
  int64_t ef_construction = 200;
};

class FaissIndex {
 public:
  FaissIndex(IndexInfo info, FaissOptions options);
  ~FaissIndex();
  FaissIndex(FaissIndex&&) noexcept;
  FaissIndex& operator=(FaissIndex&&) noexcept;

  const IndexInfo& info() const { return info_; }
  const FaissOptions& options() const { return options_; }
  int64_t size() const { return static_cast<int64_t>(ids_.size()); }
  const std::vector<std::string>& ids() const { return ids_; }
  bool contains(const std::string& id) const;

  // IVF-Flat trains on `sample` [n >= nlist, dim] (normalised here); HNSW needs no training.
  void train(const at::Tensor& sample);
  bool trained() const;
  // Appends rows (normalised); ids must be new (FAISS indexes here are append-only).
  void add(const std::vector<std::string>& ids, const at::Tensor& embeddings);
  std::vector<std::vector<Hit>> search(const at::Tensor& queries, int64_t k) const;

  void save(const std::string& path) const;
  static FaissIndex load(const std::string& path);
  static bool is_faiss_file(const std::string& path);  // a sidecar `<path>.json` of ours exists

 private:
  IndexInfo info_;
  FaissOptions options_;
  std::unique_ptr<faiss::Index> index_;
  std::vector<std::string> ids_;
  std::unordered_map<std::string, int64_t> rows_;
};

}  // namespace internvl::retrieval
