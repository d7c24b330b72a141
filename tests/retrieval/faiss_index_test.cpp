// FAISS backends through the public Index: recall@10 against brute force on random data, and
// persistence (FAISS writer + metadata sidecar).
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <random>
#include <set>

#include "common/eigen_tensor.h"
#include "internvl/index.h"
#include "internvl/error.h"

using namespace internvl;

namespace {

// Clustered random data: like real embeddings, and hard enough that IVF's cells matter.
// Points are centre + noise; the same seed gives the same centres.
Matrix clustered(int64_t n, int64_t d, int64_t clusters, uint64_t seed, uint64_t noise_seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal;
  Matrix centres(clusters, d);
  for (int64_t i = 0; i < centres.size(); ++i) centres.data()[i] = normal(rng);
  std::mt19937_64 noise(noise_seed);
  std::uniform_int_distribution<int64_t> pick(0, clusters - 1);
  Matrix out(n, d);
  for (int64_t r = 0; r < n; ++r) {
    const auto c = pick(noise);
    for (int64_t j = 0; j < d; ++j) out(r, j) = centres(c, j) + 0.5f * normal(noise);
  }
  return out;
}

double recall_at_10(const Index& approximate, const Index& exact, const Matrix& queries) {
  const auto a = approximate.search(queries, 10);
  const auto e = exact.search(queries, 10);
  double found = 0;
  for (size_t i = 0; i < e.size(); ++i) {
    std::set<std::string> truth;
    for (const auto& hit : e[i]) truth.insert(hit.id);
    for (const auto& hit : a[i]) found += truth.count(hit.id);
  }
  return found / (10.0 * e.size());
}

std::vector<std::string> make_ids(int64_t n) {
  std::vector<std::string> ids;
  for (int64_t i = 0; i < n; ++i) ids.push_back("row" + std::to_string(i));
  return ids;
}

class FaissBackends : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!Index::faiss_available()) GTEST_SKIP() << "built without FAISS";
  }
};

TEST_P(FaissBackends, RecallAt10AgainstBruteForce) {
  const int64_t n = 20000, d = 64;
  const auto data = clustered(n, d, 200, 1, 2);
  const auto queries = clustered(200, d, 200, 1, 3);
  IndexOptions options;
  options.backend = GetParam();
  options.nlist = 128;
  options.nprobe = 16;
  Index approximate("model", EmbedMode::kC, d, options);
  Index exact("model", EmbedMode::kC, d);
  const auto ids = make_ids(n);
  approximate.add(ids, data);
  exact.add(ids, data);
  const double recall = recall_at_10(approximate, exact, queries);

  std::printf("[recall] %s recall@10 = %.4f over %lld rows\n", GetParam().c_str(), recall, static_cast<long long>(n));
  EXPECT_GE(recall, 0.9);
  // Scores are cosine similarities like the flat backend's.
  const auto top = approximate.search(queries.topRows(1), 1)[0][0];
  const auto truth = exact.search(queries.topRows(1), 1)[0][0];
  if (top.id == truth.id) EXPECT_NEAR(top.score, truth.score, 1e-4);
}

TEST_P(FaissBackends, SaveLoadKeepsResultsAndMetadata) {
  const int64_t n = 3000, d = 32;
  const auto data = clustered(n, d, 50, 4, 5);
  IndexOptions options;
  options.backend = GetParam();
  options.nlist = 32;
  Index index("model-x", EmbedMode::kG, d, options);
  index.add(make_ids(n), data);
  const auto path = ::testing::TempDir() + "/faiss_" + GetParam() + ".index";
  index.save(path);
  const auto loaded = Index::load(path);
  EXPECT_EQ(loaded.backend(), GetParam());
  EXPECT_EQ(loaded.model_id(), "model-x");
  EXPECT_EQ(loaded.mode(), EmbedMode::kG);
  EXPECT_EQ(loaded.ids(), index.ids());
  const auto before = index.search(data.topRows(5), 5);
  const auto after = loaded.search(data.topRows(5), 5);
  for (size_t i = 0; i < before.size(); ++i) {
    ASSERT_EQ(before[i].size(), after[i].size());
    for (size_t j = 0; j < before[i].size(); ++j) EXPECT_EQ(before[i][j].id, after[i][j].id);
  }
  EXPECT_THROW(index.add({"row0"}, data.topRows(1)), InvalidArgument);  // append-only: no duplicate ids
  EXPECT_THROW(index.remove({"row0"}), UnsupportedError);
  ::unlink(path.c_str());
  ::unlink((path + ".json").c_str());
}

INSTANTIATE_TEST_SUITE_P(Backends, FaissBackends, ::testing::Values("ivf-flat", "hnsw"));

TEST(IndexBackends, UnknownBackendIsRejected) {
  IndexOptions options;
  options.backend = "annoy";
  EXPECT_THROW(Index("m", EmbedMode::kC, 4, options), InvalidArgument);
}

bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

// Overwriting an index with one of any other backend at the same path replaces it whole: the
// loaded index is the new one (backend, ids, results) and no file of the old one is left behind
// to confuse a later load (a stale FAISS sidecar once made a flat index unreadable).
TEST(IndexBackends, OverwriteWithAnyBackendReplacesTheIndex) {
  std::vector<std::string> backends = {"flat"};
  if (Index::faiss_available()) backends.insert(backends.end(), {"ivf-flat", "hnsw"});
  const int64_t d = 16;
  const auto first_data = clustered(400, d, 8, 11, 12), second_data = clustered(300, d, 8, 13, 14);
  std::vector<std::string> second_ids;
  for (int64_t i = 0; i < 300; ++i) second_ids.push_back("second" + std::to_string(i));
  for (const auto& from : backends) {
    for (const auto& to : backends) {
      SCOPED_TRACE(from + " -> " + to);
      const auto path = ::testing::TempDir() + "/overwrite_" + from + "_" + to + ".index";
      IndexOptions a, b;
      a.backend = from;
      b.backend = to;
      a.nlist = b.nlist = 8;
      Index first("model-a", EmbedMode::kC, d, a);
      first.add(make_ids(400), first_data);
      first.save(path);
      Index second("model-b", EmbedMode::kG, d, b);
      second.add(second_ids, second_data);
      second.save(path);
      const auto loaded = Index::load(path);
      EXPECT_EQ(loaded.backend(), to);
      EXPECT_EQ(loaded.model_id(), "model-b");
      EXPECT_EQ(loaded.mode(), EmbedMode::kG);
      EXPECT_EQ(loaded.ids(), second_ids);
      const auto hits = loaded.search(second_data.topRows(3), 1);
      for (int i = 0; i < 3; ++i) {
        ASSERT_EQ(hits[i].size(), 1u);
        EXPECT_EQ(hits[i][0].id, second_ids[i]);  // a row is its own nearest neighbour
      }
      EXPECT_EQ(exists(path + ".json"), to != "flat");
      ::unlink(path.c_str());
      ::unlink((path + ".json").c_str());
    }
  }
}

// A FAISS sidecar that does not belong to the index file beside it (an interrupted save, files
// mixed up by hand) is a CheckpointError naming the file, not a wrong index.
TEST(IndexBackends, SidecarOfAnotherIndexIsRefused) {
  if (!Index::faiss_available()) GTEST_SKIP() << "built without FAISS";
  const int64_t d = 16;
  IndexOptions options;
  options.backend = "hnsw";
  const auto small = ::testing::TempDir() + "/sidecar_small.index", large = ::testing::TempDir() + "/sidecar_large.index";
  Index a("m", EmbedMode::kC, d, options);
  a.add(make_ids(50), clustered(50, d, 4, 1, 2));
  a.save(small);
  Index b("m", EmbedMode::kC, d, options);
  b.add(make_ids(80), clustered(80, d, 4, 3, 4));
  b.save(large);
  std::ifstream in(small + ".json", std::ios::binary);
  const std::string sidecar((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::ofstream(large + ".json", std::ios::binary) << sidecar;
  try {
    Index::load(large);
    ADD_FAILURE() << "a mismatched sidecar was accepted";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find(large), std::string::npos) << e.what();
  }
  for (const auto& p : {small, large}) {
    ::unlink(p.c_str());
    ::unlink((p + ".json").c_str());
  }
}

}  // namespace
