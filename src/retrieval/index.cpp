// The public Index: a thin wrapper over retrieval::EmbeddingIndex.
#include "internvl/index.h"

#include "common/check.h"
#include "common/eigen_tensor.h"
#include "retrieval/embedding_index.h"

namespace internvl {

struct Index::Impl {
  explicit Impl(retrieval::EmbeddingIndex i) : index(std::move(i)) {}
  retrieval::EmbeddingIndex index;
};

Index::Index(std::string model_id, EmbedMode mode, int dim)
    : impl_(std::make_unique<Impl>(retrieval::EmbeddingIndex({std::move(model_id), to_string(mode), dim}))) {}
Index::Index(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Index::Index(Index&&) noexcept = default;
Index& Index::operator=(Index&&) noexcept = default;
Index::~Index() = default;

Index Index::load(const std::string& path) {
  return Index(std::make_unique<Impl>(retrieval::EmbeddingIndex::load(path)));
}

const std::string& Index::model_id() const { return impl_->index.info().model_id; }
EmbedMode Index::mode() const { return parse_embed_mode(impl_->index.info().mode); }
int Index::dim() const { return static_cast<int>(impl_->index.info().dim); }
int64_t Index::size() const { return impl_->index.size(); }
const std::vector<std::string>& Index::ids() const { return impl_->index.ids(); }
bool Index::contains(const std::string& id) const { return impl_->index.contains(id); }

void Index::add(const std::vector<std::string>& ids, const Matrix& embeddings) {
  impl_->index.add(ids, to_tensor(embeddings));
}

int64_t Index::remove(const std::vector<std::string>& ids) { return impl_->index.remove(ids); }

Matrix Index::embeddings() const { return to_matrix(impl_->index.embeddings()); }

std::vector<std::vector<SearchHit>> Index::search(const Matrix& queries, int k) const {
  const auto raw = impl_->index.search(to_tensor(queries), k);
  std::vector<std::vector<SearchHit>> out(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    for (const auto& hit : raw[i]) out[i].push_back({impl_->index.ids()[hit.row], hit.row, hit.score});
  }
  return out;
}

void Index::save(const std::string& path) const { impl_->index.save(path); }

}  // namespace internvl
