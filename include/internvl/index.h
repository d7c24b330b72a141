/// @file
/// A searchable collection of embeddings of one model and mode, persisted as one safetensors file
/// (format: docs/index_format.md). Brute-force cosine top-k by matrix product.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "internvl/types.h"

namespace internvl {

/// How an index searches.
struct IndexOptions {
  /// "flat": exact brute force (default, always available). "ivf-flat" / "hnsw": approximate FAISS
  /// indexes (inner product on normalised rows) when the library was built with FAISS.
  std::string backend = "flat";
  int nlist = 1024;      ///< ivf-flat: cells; trained on the first add (needs >= nlist rows)
  int nprobe = 32;       ///< ivf-flat: cells visited per query
  int hnsw_m = 32;       ///< hnsw: graph degree
  int ef_search = 128;   ///< hnsw: search breadth
};

/// Embeddings of one model and mode, with ids; searched by cosine similarity.
class Index {
 public:
  /// An empty index for embeddings of `model_id` in `mode` with `dim` columns.
  Index(std::string model_id, EmbedMode mode, int dim, const IndexOptions& options = {});
  /// Whether this build has the FAISS backends ("ivf-flat", "hnsw").
  static bool faiss_available();
  /// Reads an index written by save() (a FAISS index is recognised by its `<path>.json` sidecar);
  /// CheckpointError names the file on any problem.
  static Index load(const std::string& path);

  Index(Index&&) noexcept;             ///< movable, not copyable
  Index& operator=(Index&&) noexcept;  ///< movable, not copyable
  ~Index();

  const std::string& model_id() const;          ///< Model::model_id() of the embeddings' model
  const std::string& backend() const;           ///< "flat", "ivf-flat" or "hnsw"
  EmbedMode mode() const;                       ///< InternVL-C or -G embeddings
  int dim() const;                              ///< embedding width
  int64_t size() const;                         ///< number of entries
  const std::vector<std::string>& ids() const;  ///< entry ids, in row order
  bool contains(const std::string& id) const;   ///< whether `id` is an entry

  /// Rows are L2-normalised on the way in; an id already present has its row replaced (flat) or is
  /// refused (FAISS).
  void add(const std::vector<std::string>& ids, const Matrix& embeddings);
  /// Flat backend only (FAISS indexes here are append-only): UnsupportedError otherwise.
  int64_t remove(const std::vector<std::string>& ids);
  Matrix embeddings() const;  ///< normalised rows, in ids() order

  /// For each query row, the min(k, size()) best entries, best first.
  std::vector<std::vector<SearchHit>> search(const Matrix& queries, int k) const;

  void save(const std::string& path) const;  ///< atomic: temp file + rename

  /// @cond INTERNAL
  struct Impl;
  Impl& impl() const { return *impl_; }
  /// @endcond

 private:
  explicit Index(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  ///< namespace internvl
