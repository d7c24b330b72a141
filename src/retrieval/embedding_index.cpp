#include "retrieval/embedding_index.h"

#include <ATen/ATen.h>

#include <nlohmann/json.hpp>
#include <unordered_set>

#include "common/check.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "io/tensor_convert.h"

namespace internvl::retrieval {
namespace {

at::Tensor normalise_rows(const at::Tensor& x) {
  const auto f = x.detach().to(at::kCPU, at::kFloat);
  return f / f.norm(2, 1, /*keepdim=*/true).clamp_min(1e-12);
}

// Query blocks sized so that one block of scores stays under ~64M floats.
constexpr int64_t kMaxScoreElements = int64_t{1} << 26;

}  // namespace

EmbeddingIndex::EmbeddingIndex(IndexInfo info) : info_(std::move(info)) {
  INTERNVL_CHECK(info_.dim > 0, InvalidArgument, "EmbeddingIndex: dim must be positive, got ", info_.dim);
  INTERNVL_CHECK(info_.mode == "c" || info_.mode == "g", InvalidArgument, "EmbeddingIndex: mode must be 'c' or 'g', got '",
                 info_.mode, "'");
  matrix_ = at::empty({0, info_.dim}, at::kFloat);
}

int64_t EmbeddingIndex::row_of(const std::string& id) const {
  auto it = rows_.find(id);
  INTERNVL_CHECK(it != rows_.end(), InvalidArgument, "EmbeddingIndex: no entry with id '", id, "'");
  return it->second;
}

void EmbeddingIndex::materialise() const {
  std::lock_guard<std::mutex> lock(*materialise_mutex_);
  if (pending_.empty()) return;
  pending_.insert(pending_.begin(), matrix_);
  matrix_ = at::cat(pending_, 0);
  pending_.clear();
}

void EmbeddingIndex::add(const std::vector<std::string>& ids, const at::Tensor& embeddings) {
  INTERNVL_CHECK(embeddings.dim() == 2 && embeddings.size(1) == info_.dim, InvalidArgument,
                 "EmbeddingIndex::add: embeddings must be [n, ", info_.dim, "], got ", embeddings.sizes());
  INTERNVL_CHECK(static_cast<int64_t>(ids.size()) == embeddings.size(0), InvalidArgument, "EmbeddingIndex::add: ",
                 ids.size(), " ids for ", embeddings.size(0), " embeddings");
  INTERNVL_CHECK(at::isfinite(embeddings).all().item<bool>(), InvalidArgument,
                 "EmbeddingIndex::add: embeddings contain NaN or infinity");
  std::unordered_set<std::string> seen;
  for (const auto& id : ids) {
    INTERNVL_CHECK(seen.insert(id).second, InvalidArgument, "EmbeddingIndex::add: id '", id, "' appears twice");
  }
  const auto rows = normalise_rows(embeddings);
  std::vector<int64_t> fresh;
  bool replaced = false;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (rows_.count(ids[i])) {
      replaced = true;
    } else {
      fresh.push_back(static_cast<int64_t>(i));
    }
  }
  if (replaced) {
    materialise();
    for (size_t i = 0; i < ids.size(); ++i) {
      auto it = rows_.find(ids[i]);
      if (it != rows_.end()) matrix_[it->second].copy_(rows[i]);
    }
  }
  if (fresh.empty()) return;
  pending_.push_back(fresh.size() == ids.size() ? rows : rows.index_select(0, at::tensor(fresh, at::kLong)));
  for (const int64_t i : fresh) {
    rows_[ids[i]] = static_cast<int64_t>(ids_.size());
    ids_.push_back(ids[i]);
  }
}

int64_t EmbeddingIndex::remove(const std::vector<std::string>& ids) {
  std::unordered_set<std::string> drop;
  for (const auto& id : ids) {
    if (rows_.count(id)) drop.insert(id);
  }
  if (drop.empty()) return 0;
  materialise();
  std::vector<int64_t> keep;
  std::vector<std::string> kept_ids;
  for (size_t i = 0; i < ids_.size(); ++i) {
    if (!drop.count(ids_[i])) {
      keep.push_back(static_cast<int64_t>(i));
      kept_ids.push_back(ids_[i]);
    }
  }
  matrix_ = matrix_.index_select(0, at::tensor(keep, at::kLong));
  ids_ = std::move(kept_ids);
  rows_.clear();
  for (size_t i = 0; i < ids_.size(); ++i) rows_[ids_[i]] = static_cast<int64_t>(i);
  return static_cast<int64_t>(drop.size());
}

at::Tensor EmbeddingIndex::embeddings() const {
  materialise();
  return matrix_;
}

std::vector<std::vector<Hit>> EmbeddingIndex::search(const at::Tensor& queries, int64_t k) const {
  INTERNVL_CHECK(k > 0, InvalidArgument, "EmbeddingIndex::search: k must be positive, got ", k);
  INTERNVL_CHECK(queries.dim() == 2 && queries.size(1) == info_.dim, InvalidArgument,
                 "EmbeddingIndex::search: queries must be [m, ", info_.dim, "], got ", queries.sizes());
  materialise();
  const int64_t n = matrix_.size(0), m = queries.size(0);
  std::vector<std::vector<Hit>> results(m);
  if (n == 0 || m == 0) return results;
  const int64_t top = std::min(k, n);
  const auto q = normalise_rows(queries);
  const int64_t block = std::max<int64_t>(1, kMaxScoreElements / n);
  for (int64_t start = 0; start < m; start += block) {
    const int64_t end = std::min(m, start + block);
    const auto scores = at::matmul(q.slice(0, start, end), matrix_.t());  // [b, n]
    const auto [values, indices] = at::topk(scores, top, 1, /*largest=*/true, /*sorted=*/true);
    const auto v = values.accessor<float, 2>();
    const auto idx = indices.accessor<int64_t, 2>();
    for (int64_t i = 0; i < end - start; ++i) {
      auto& hits = results[start + i];
      hits.reserve(top);
      for (int64_t j = 0; j < top; ++j) hits.push_back({idx[i][j], v[i][j]});
    }
  }
  return results;
}

void EmbeddingIndex::check_compatible(const IndexInfo& expected) const {
  INTERNVL_CHECK(info_.model_id == expected.model_id, InvalidArgument, "index holds embeddings of model '",
                 info_.model_id, "', not of '", expected.model_id, "'");
  INTERNVL_CHECK(info_.mode == expected.mode, InvalidArgument, "index holds mode '", info_.mode,
                 "' embeddings, not mode '", expected.mode, "'");
  INTERNVL_CHECK(info_.dim == expected.dim, InvalidArgument, "index dimension ", info_.dim, " differs from ",
                 expected.dim);
}

void EmbeddingIndex::save(const std::string& path) const {
  materialise();
  std::map<std::string, std::string> metadata{{"format", kFormat},
                                              {"version", std::to_string(kVersion)},
                                              {"model_id", info_.model_id},
                                              {"mode", info_.mode},
                                              {"dim", std::to_string(info_.dim)},
                                              {"ids", nlohmann::json(ids_).dump()}};
  io::write_safetensors(path, {{"embeddings", matrix_}}, metadata);
}

EmbeddingIndex EmbeddingIndex::load(const std::string& path) {
  io::SafetensorsFile file(path);
  const auto& meta = file.metadata();
  auto field = [&](const char* key) -> const std::string& {
    auto it = meta.find(key);
    INTERNVL_CHECK(it != meta.end(), CheckpointError, path, ": not an embedding index (metadata '", key, "' missing)");
    return it->second;
  };
  INTERNVL_CHECK(field("format") == kFormat, CheckpointError, path, ": metadata 'format' is '", field("format"),
                 "', expected '", kFormat, "'");
  INTERNVL_CHECK(field("version") == std::to_string(kVersion), CheckpointError, path, ": index version ",
                 field("version"), " is not supported (", kVersion, ")");
  IndexInfo info;
  info.model_id = field("model_id");
  info.mode = field("mode");
  try {
    info.dim = std::stoll(field("dim"));
  } catch (const std::exception&) {
    INTERNVL_THROW(CheckpointError, path, ": metadata 'dim' is not a number");
  }
  std::vector<std::string> ids;
  try {
    ids = nlohmann::json::parse(field("ids")).get<std::vector<std::string>>();
  } catch (const std::exception& e) {
    INTERNVL_THROW(CheckpointError, path, ": metadata 'ids' is not a JSON list of strings (", e.what(), ")");
  }
  const auto& view = file.tensor("embeddings");
  INTERNVL_CHECK(view.dtype == io::DType::F32 && view.shape.size() == 2 &&
                     view.shape[0] == static_cast<int64_t>(ids.size()) && view.shape[1] == info.dim,
                 CheckpointError, path, ": tensor 'embeddings' must be F32 [", ids.size(), ", ", info.dim, "]");
  // A well-formed file with values the index refuses (mode, dim, repeated ids, NaN) is still a
  // bad file: report it as such, naming the path.
  try {
    EmbeddingIndex index(info);
    if (!ids.empty()) index.add(ids, io::to_tensor(view, at::kFloat));
    return index;
  } catch (const InvalidArgument& e) {
    INTERNVL_THROW(CheckpointError, path, ": invalid index contents (", e.what(), ")");
  }
}

}  // namespace internvl::retrieval
