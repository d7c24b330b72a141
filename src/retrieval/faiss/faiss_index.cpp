#include "retrieval/faiss/faiss_index.h"

#include <ATen/ATen.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/index_io.h>
#include <faiss/impl/FaissException.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "common/atomic_file.h"
#include "common/check.h"

namespace internvl::retrieval {
namespace {

at::Tensor normalised_float(const at::Tensor& x) {
  auto f = x.detach().to(at::kCPU, at::kFloat).contiguous();
  return (f / f.norm(2, 1, /*keepdim=*/true).clamp_min(1e-12)).contiguous();
}

// IVF-Flat keeps its quantizer alive through `own_fields`.
std::unique_ptr<faiss::Index> make_index(int64_t dim, const FaissOptions& o) {
  if (o.kind == "hnsw") {
    // L2 on unit rows ranks exactly as inner product (|a-b|^2 = 2 - 2 cos), and HNSW's graph
    // construction heuristics assume a metric; scores are converted back to cosines on search.
    auto index = std::make_unique<faiss::IndexHNSWFlat>(dim, o.hnsw_m, faiss::METRIC_L2);
    index->hnsw.efSearch = o.ef_search;
    index->hnsw.efConstruction = o.ef_construction;
    return index;
  }
  if (o.kind == "ivf-flat") {
    auto* quantizer = new faiss::IndexFlatIP(dim);
    auto index = std::make_unique<faiss::IndexIVFFlat>(quantizer, dim, o.nlist, faiss::METRIC_INNER_PRODUCT);
    index->own_fields = true;
    index->nprobe = o.nprobe;
    return index;
  }
  INTERNVL_THROW(InvalidArgument, "FAISS index kind must be 'ivf-flat' or 'hnsw', got '", o.kind, "'");
}

void apply_search_options(faiss::Index* index, const FaissOptions& o) {
  if (auto* ivf = dynamic_cast<faiss::IndexIVFFlat*>(index)) ivf->nprobe = o.nprobe;
  if (auto* hnsw = dynamic_cast<faiss::IndexHNSWFlat*>(index)) hnsw->hnsw.efSearch = o.ef_search;
}

}  // namespace

FaissIndex::FaissIndex(IndexInfo info, FaissOptions options) : info_(std::move(info)), options_(std::move(options)) {
  INTERNVL_CHECK(info_.dim > 0, InvalidArgument, "FaissIndex: dim must be positive");
  INTERNVL_CHECK(options_.nlist > 0 && options_.nprobe > 0 && options_.hnsw_m > 1 && options_.ef_search > 0,
                 InvalidArgument, "FaissIndex: nlist, nprobe, ef_search must be positive and hnsw_m > 1");
  index_ = make_index(info_.dim, options_);
}

FaissIndex::~FaissIndex() = default;
FaissIndex::FaissIndex(FaissIndex&&) noexcept = default;
FaissIndex& FaissIndex::operator=(FaissIndex&&) noexcept = default;

bool FaissIndex::contains(const std::string& id) const { return rows_.count(id) != 0; }
bool FaissIndex::trained() const { return index_->is_trained; }

void FaissIndex::train(const at::Tensor& sample) {
  INTERNVL_CHECK(sample.dim() == 2 && sample.size(1) == info_.dim, InvalidArgument, "FaissIndex::train: sample must be [n, ",
                 info_.dim, "]");
  if (index_->is_trained) return;
  INTERNVL_CHECK(sample.size(0) >= options_.nlist, InvalidArgument, "FaissIndex::train: IVF with nlist ",
                 options_.nlist, " needs at least that many training rows, got ", sample.size(0));
  const auto rows = normalised_float(sample);
  try {
    index_->train(rows.size(0), rows.data_ptr<float>());
  } catch (const faiss::FaissException& e) {
    INTERNVL_THROW(InvalidArgument, "FAISS training failed: ", e.what());
  }
}

void FaissIndex::add(const std::vector<std::string>& ids, const at::Tensor& embeddings) {
  INTERNVL_CHECK(embeddings.dim() == 2 && embeddings.size(1) == info_.dim, InvalidArgument,
                 "FaissIndex::add: embeddings must be [n, ", info_.dim, "], got ", embeddings.sizes());
  INTERNVL_CHECK(static_cast<int64_t>(ids.size()) == embeddings.size(0), InvalidArgument, "FaissIndex::add: ",
                 ids.size(), " ids for ", embeddings.size(0), " rows");
  std::unordered_set<std::string> seen;
  for (const auto& id : ids) {
    INTERNVL_CHECK(!rows_.count(id) && seen.insert(id).second, InvalidArgument, "FaissIndex::add: id '", id,
                   "' is already present (FAISS indexes are append-only)");
  }
  if (ids.empty()) return;
  if (!index_->is_trained) train(embeddings);
  const auto rows = normalised_float(embeddings);
  index_->add(rows.size(0), rows.data_ptr<float>());
  for (const auto& id : ids) {
    rows_[id] = static_cast<int64_t>(ids_.size());
    ids_.push_back(id);
  }
}

std::vector<std::vector<Hit>> FaissIndex::search(const at::Tensor& queries, int64_t k) const {
  INTERNVL_CHECK(k > 0, InvalidArgument, "FaissIndex::search: k must be positive, got ", k);
  INTERNVL_CHECK(queries.dim() == 2 && queries.size(1) == info_.dim, InvalidArgument,
                 "FaissIndex::search: queries must be [m, ", info_.dim, "]");
  const int64_t m = queries.size(0), top = std::min<int64_t>(k, size());
  std::vector<std::vector<Hit>> results(m);
  if (top == 0 || m == 0) return results;
  const auto q = normalised_float(queries);
  std::vector<float> distances(m * top);
  std::vector<faiss::Index::idx_t> labels(m * top);
  index_->search(m, q.data_ptr<float>(), top, distances.data(), labels.data());
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < top; ++j) {
      const auto label = labels[i * top + j];
      if (label < 0) continue;
      const float d = distances[i * top + j];
      results[i].push_back({label, index_->metric_type == faiss::METRIC_L2 ? 1.0f - d / 2.0f : d});
    }
  }
  return results;
}

void FaissIndex::save(const std::string& path) const {
  // FAISS writes to a path; write it next to the destination, then rename (atomic replace).
  const std::string temp = path + ".tmp." + std::to_string(::getpid());
  try {
    faiss::write_index(index_.get(), temp.c_str());
  } catch (const faiss::FaissException& e) {
    ::unlink(temp.c_str());
    INTERNVL_THROW(Error, "cannot write FAISS index ", path, ": ", e.what());
  }
  nlohmann::json meta = {{"format", "internvl-faiss-index"}, {"version", 1},          {"model_id", info_.model_id},
                         {"mode", info_.mode},                {"dim", info_.dim},      {"kind", options_.kind},
                         {"nlist", options_.nlist},           {"nprobe", options_.nprobe}, {"hnsw_m", options_.hnsw_m},
                         {"ef_search", options_.ef_search},   {"ids", ids_}};
  // The size of the index file this sidecar belongs to: the two files are renamed one after the
  // other, and a load must not pair a new sidecar with an old index (an interrupted save).
  struct stat written{};
  if (::stat(temp.c_str(), &written) == 0) meta["index_bytes"] = static_cast<int64_t>(written.st_size);
  const std::string text = meta.dump();
  write_file_atomically(path + ".json", [&](int fd) { write_all(fd, text.data(), text.size(), path + ".json"); });
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    ::unlink(temp.c_str());
    INTERNVL_THROW(Error, "cannot move the FAISS index into place at ", path);
  }
}

bool FaissIndex::is_faiss_file(const std::string& path) {
  struct stat st{};
  return ::stat((path + ".json").c_str(), &st) == 0;
}

FaissIndex FaissIndex::load(const std::string& path) {
  nlohmann::json meta;
  try {
    std::ifstream in(path + ".json");
    INTERNVL_CHECK(in.good(), CheckpointError, path, ".json: missing (the metadata of a FAISS index)");
    meta = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    INTERNVL_THROW(CheckpointError, path, ".json: malformed (", e.what(), ")");
  }
  FaissOptions options;
  IndexInfo info;
  try {
    INTERNVL_CHECK(meta.at("format") == "internvl-faiss-index", CheckpointError, path, ".json: not a FAISS index sidecar");
    info = {meta.at("model_id").get<std::string>(), meta.at("mode").get<std::string>(), meta.at("dim").get<int64_t>()};
    options.kind = meta.at("kind").get<std::string>();
    options.nlist = meta.at("nlist").get<int64_t>();
    options.nprobe = meta.at("nprobe").get<int64_t>();
    options.hnsw_m = meta.at("hnsw_m").get<int64_t>();
    options.ef_search = meta.at("ef_search").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    INTERNVL_THROW(CheckpointError, path, ".json: missing or mistyped field (", e.what(), ")");
  }
  if (meta.contains("index_bytes")) {
    struct stat st{};
    const int64_t expected = meta.at("index_bytes").get<int64_t>();
    const int64_t actual = ::stat(path.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : -1;
    INTERNVL_CHECK(actual == expected, CheckpointError, path, ": the FAISS file has ", actual,
                   " bytes but its sidecar ", path, ".json describes one of ", expected,
                   " (a save was interrupted, or the files come from different indexes): index again");
  }
  FaissIndex index(info, options);
  try {
    index.index_.reset(faiss::read_index(path.c_str()));
  } catch (const faiss::FaissException& e) {
    INTERNVL_THROW(CheckpointError, path, ": cannot read the FAISS index (", e.what(), ")");
  }
  INTERNVL_CHECK(index.index_->d == info.dim, CheckpointError, path, ": FAISS dimension ", index.index_->d,
                 " differs from the metadata's ", info.dim);
  apply_search_options(index.index_.get(), options);
  const auto ids = meta.at("ids").get<std::vector<std::string>>();
  INTERNVL_CHECK(static_cast<int64_t>(ids.size()) == index.index_->ntotal, CheckpointError, path, ": ", ids.size(),
                 " ids for ", index.index_->ntotal, " FAISS rows");
  for (const auto& id : ids) {
    index.rows_[id] = static_cast<int64_t>(index.ids_.size());
    index.ids_.push_back(id);
  }
  return index;
}

}  // namespace internvl::retrieval
