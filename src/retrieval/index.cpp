// The public Index: brute force (retrieval::EmbeddingIndex) or FAISS (retrieval::FaissIndex).
#include "internvl/index.h"

#include <unistd.h>

#include <fstream>

#include "common/check.h"
#include "common/eigen_tensor.h"
#include "retrieval/embedding_index.h"
#ifdef INTERNVL_WITH_FAISS
#include "retrieval/faiss/faiss_index.h"
#endif

namespace internvl {

struct Index::Impl {
  std::unique_ptr<retrieval::EmbeddingIndex> flat;
#ifdef INTERNVL_WITH_FAISS
  std::unique_ptr<retrieval::FaissIndex> faiss;
#endif
  std::string backend = "flat";

  const retrieval::IndexInfo& info() const {
#ifdef INTERNVL_WITH_FAISS
    if (faiss) return faiss->info();
#endif
    return flat->info();
  }
  const std::vector<std::string>& ids() const {
#ifdef INTERNVL_WITH_FAISS
    if (faiss) return faiss->ids();
#endif
    return flat->ids();
  }
  const retrieval::EmbeddingIndex& require_flat(const char* operation) const {
    INTERNVL_CHECK(flat != nullptr, UnsupportedError, "Index::", operation, " is not available for the '", backend,
                   "' backend");
    return *flat;
  }
};

bool Index::faiss_available() {
#ifdef INTERNVL_WITH_FAISS
  return true;
#else
  return false;
#endif
}

Index::Index(std::string model_id, EmbedMode mode, int dim, const IndexOptions& options)
    : impl_(std::make_unique<Impl>()) {
  retrieval::IndexInfo info{std::move(model_id), to_string(mode), dim};
  impl_->backend = options.backend;
  if (options.backend == "flat") {
    impl_->flat = std::make_unique<retrieval::EmbeddingIndex>(info);
    return;
  }
  INTERNVL_CHECK(options.backend == "ivf-flat" || options.backend == "hnsw", InvalidArgument,
                 "IndexOptions.backend must be flat, ivf-flat or hnsw, got '", options.backend, "'");
#ifdef INTERNVL_WITH_FAISS
  retrieval::FaissOptions faiss;
  faiss.kind = options.backend;
  faiss.nlist = options.nlist;
  faiss.nprobe = options.nprobe;
  faiss.hnsw_m = options.hnsw_m;
  faiss.ef_search = options.ef_search;
  impl_->faiss = std::make_unique<retrieval::FaissIndex>(info, faiss);
#else
  INTERNVL_THROW(UnsupportedError, "IndexOptions.backend '", options.backend,
                 "' needs a build with FAISS (INTERNVL_WITH_FAISS, Debian libfaiss-dev)");
#endif
}

Index::Index(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Index::Index(Index&&) noexcept = default;
Index& Index::operator=(Index&&) noexcept = default;
Index::~Index() = default;

namespace {

// Whether `path` holds a safetensors file (the flat backend): its 8-byte little-endian header
// length fits in the file and the header starts with '{'. Decided by content, so a sidecar left
// by an earlier FAISS index at the same path cannot redirect the load.
bool looks_like_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  unsigned char head[9] = {};
  if (!in.read(reinterpret_cast<char*>(head), sizeof(head))) return false;
  uint64_t length = 0;
  for (int i = 7; i >= 0; --i) length = (length << 8) | head[i];
  in.seekg(0, std::ios::end);
  const auto size = static_cast<uint64_t>(in.tellg());
  return head[8] == '{' && length >= 2 && length <= size - 8;
}

// Removes `<path>.json` when it is a FAISS index sidecar of ours (nothing else is touched).
void remove_faiss_sidecar(const std::string& path) {
  const std::string sidecar = path + ".json";
  std::ifstream in(sidecar);
  if (!in.good()) return;
  std::string head(256, '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<size_t>(in.gcount()));
  in.close();
  if (head.find("\"internvl-faiss-index\"") != std::string::npos) ::unlink(sidecar.c_str());
}

}  // namespace

Index Index::load(const std::string& path) {
  auto impl = std::make_unique<Impl>();
#ifdef INTERNVL_WITH_FAISS
  if (!looks_like_safetensors(path) && retrieval::FaissIndex::is_faiss_file(path)) {
    impl->faiss = std::make_unique<retrieval::FaissIndex>(retrieval::FaissIndex::load(path));
    impl->backend = impl->faiss->options().kind;
    return Index(std::move(impl));
  }
#endif
  impl->flat = std::make_unique<retrieval::EmbeddingIndex>(retrieval::EmbeddingIndex::load(path));
  return Index(std::move(impl));
}

const std::string& Index::model_id() const { return impl_->info().model_id; }
const std::string& Index::backend() const { return impl_->backend; }
EmbedMode Index::mode() const { return parse_embed_mode(impl_->info().mode); }
int Index::dim() const { return static_cast<int>(impl_->info().dim); }
int64_t Index::size() const { return static_cast<int64_t>(impl_->ids().size()); }
const std::vector<std::string>& Index::ids() const { return impl_->ids(); }

bool Index::contains(const std::string& id) const {
#ifdef INTERNVL_WITH_FAISS
  if (impl_->faiss) return impl_->faiss->contains(id);
#endif
  return impl_->flat->contains(id);
}

void Index::add(const std::vector<std::string>& ids, const Matrix& embeddings) {
#ifdef INTERNVL_WITH_FAISS
  if (impl_->faiss) return impl_->faiss->add(ids, to_tensor(embeddings));
#endif
  impl_->flat->add(ids, to_tensor(embeddings));
}

int64_t Index::remove(const std::vector<std::string>& ids) {
  impl_->require_flat("remove");
  return impl_->flat->remove(ids);
}

Matrix Index::embeddings() const { return to_matrix(impl_->require_flat("embeddings").embeddings()); }

std::vector<std::vector<SearchHit>> Index::search(const Matrix& queries, int k) const {
  std::vector<std::vector<retrieval::Hit>> raw;
#ifdef INTERNVL_WITH_FAISS
  if (impl_->faiss) raw = impl_->faiss->search(to_tensor(queries), k);
#endif
  if (impl_->flat) raw = impl_->flat->search(to_tensor(queries), k);
  const auto& ids = impl_->ids();
  std::vector<std::vector<SearchHit>> out(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    for (const auto& hit : raw[i]) out[i].push_back({ids[hit.row], hit.row, hit.score});
  }
  return out;
}

void Index::save(const std::string& path) const {
#ifdef INTERNVL_WITH_FAISS
  if (impl_->faiss) return impl_->faiss->save(path);
#endif
  impl_->flat->save(path);
  // The flat index is one file: a FAISS sidecar of an index this one replaced goes too.
  remove_faiss_sidecar(path);
}

}  // namespace internvl
