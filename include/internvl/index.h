// A searchable collection of embeddings of one model and mode, persisted as one safetensors file
// (format: docs/index_format.md). Brute-force cosine top-k by matrix product.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "internvl/types.h"

namespace internvl {

class Index {
 public:
  // An empty index for embeddings of `model_id` in `mode` with `dim` columns.
  Index(std::string model_id, EmbedMode mode, int dim);
  // Reads an index written by save(); CheckpointError names the file on any problem.
  static Index load(const std::string& path);

  Index(Index&&) noexcept;
  Index& operator=(Index&&) noexcept;
  ~Index();

  const std::string& model_id() const;
  EmbedMode mode() const;
  int dim() const;
  int64_t size() const;
  const std::vector<std::string>& ids() const;
  bool contains(const std::string& id) const;

  // Rows are L2-normalised on the way in; an id already present has its row replaced.
  void add(const std::vector<std::string>& ids, const Matrix& embeddings);
  int64_t remove(const std::vector<std::string>& ids);
  Matrix embeddings() const;  // normalised rows, in ids() order

  // For each query row, the min(k, size()) best entries, best first.
  std::vector<std::vector<SearchHit>> search(const Matrix& queries, int k) const;

  void save(const std::string& path) const;  // atomic: temp file + rename

  struct Impl;
  Impl& impl() const { return *impl_; }

 private:
  explicit Index(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace internvl
