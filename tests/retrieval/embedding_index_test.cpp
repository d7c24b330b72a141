// EmbeddingIndex: exact top-k against a naive scan, updates, persistence and bad files.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "internvl/error.h"
#include "retrieval/embedding_index.h"

using namespace internvl;
using retrieval::EmbeddingIndex;
using retrieval::IndexInfo;

namespace {

std::vector<std::string> make_ids(int64_t n, const std::string& prefix = "item") {
  std::vector<std::string> ids;
  for (int64_t i = 0; i < n; ++i) ids.push_back(prefix + std::to_string(i));
  return ids;
}

std::string temp_path(const std::string& name) { return ::testing::TempDir() + "/" + name; }

TEST(EmbeddingIndex, TopKEqualsNaiveScan) {
  at::manual_seed(7);
  const int64_t n = 503, d = 37, m = 11, k = 10;
  EmbeddingIndex index({"model", "c", d});
  const auto data = at::randn({n, d});
  const auto ids = make_ids(n);
  index.add({ids.begin(), ids.begin() + 200}, data.slice(0, 0, 200));
  index.add({ids.begin() + 200, ids.end()}, data.slice(0, 200));
  ASSERT_EQ(index.size(), n);
  const auto queries = at::randn({m, d}) * 3.0;
  const auto hits = index.search(queries, k);
  ASSERT_EQ(hits.size(), static_cast<size_t>(m));
  const auto nd = data / data.norm(2, 1, true);
  const auto nq = queries / queries.norm(2, 1, true);
  for (int64_t i = 0; i < m; ++i) {
    std::vector<std::pair<float, int64_t>> naive;
    for (int64_t r = 0; r < n; ++r) naive.push_back({(nq[i] * nd[r]).sum().item<float>(), r});
    std::sort(naive.begin(), naive.end(), [](auto a, auto b) { return a.first > b.first; });
    ASSERT_EQ(hits[i].size(), static_cast<size_t>(k));
    for (int64_t j = 0; j < k; ++j) {
      EXPECT_EQ(hits[i][j].row, naive[j].second) << "query " << i << " rank " << j;
      EXPECT_NEAR(hits[i][j].score, naive[j].first, 1e-5);
      if (j > 0) EXPECT_GE(hits[i][j - 1].score, hits[i][j].score);
    }
  }
  // k larger than the index returns every row.
  EXPECT_EQ(index.search(queries.slice(0, 0, 1), n + 50)[0].size(), static_cast<size_t>(n));
}

TEST(EmbeddingIndex, AddReplacesAndRemoveCompacts) {
  EmbeddingIndex index({"model", "g", 3});
  index.add({"a", "b", "c"}, at::eye(3));
  index.add({"b"}, at::tensor({0.f, 2.f, 2.f}).view({1, 3}));  // b replaced: between y and z
  EXPECT_EQ(index.size(), 3);
  const auto hit = index.search(at::tensor({0.f, 1.f, 1.f}).view({1, 3}), 2)[0];
  EXPECT_EQ(index.ids()[hit[0].row], "b");
  EXPECT_NEAR(hit[0].score, 1.0f, 1e-6);
  EXPECT_NEAR(hit[1].score, std::sqrt(0.5f), 1e-6);
  EXPECT_EQ(index.remove({"a", "zzz"}), 1);
  EXPECT_EQ(index.size(), 2);
  EXPECT_FALSE(index.contains("a"));
  EXPECT_EQ(index.row_of("c"), 1);
  EXPECT_THROW(index.row_of("a"), InvalidArgument);
}

TEST(EmbeddingIndex, SaveLoadRoundTripIsExactAndAtomic) {
  at::manual_seed(3);
  EmbeddingIndex index({"internvl-14b:1234", "g", 16});
  index.add(make_ids(40, "img/ü "), at::randn({40, 16}));
  const auto path = temp_path("index_roundtrip.safetensors");
  index.save(path);
  const auto loaded = EmbeddingIndex::load(path);
  EXPECT_TRUE(loaded.info() == index.info());
  EXPECT_EQ(loaded.ids(), index.ids());
  EXPECT_TRUE(at::allclose(loaded.embeddings(), index.embeddings(), 0, 1e-7));
  // No temporary file is left next to the destination.
  const auto dir = ::testing::TempDir();
  for (const auto* suffix : {".tmp."}) {
    std::string command = "ls " + dir + " | grep -c 'index_roundtrip.safetensors" + suffix + "' > /dev/null";
    EXPECT_NE(std::system(command.c_str()), 0);
  }
  ::unlink(path.c_str());
}

TEST(EmbeddingIndex, RefusesOtherModelsAndModes) {
  EmbeddingIndex index({"model-a", "c", 8});
  EXPECT_NO_THROW(index.check_compatible({"model-a", "c", 8}));
  EXPECT_THROW(index.check_compatible({"model-b", "c", 8}), InvalidArgument);
  EXPECT_THROW(index.check_compatible({"model-a", "g", 8}), InvalidArgument);
  EXPECT_THROW(index.check_compatible({"model-a", "c", 9}), InvalidArgument);
}

TEST(EmbeddingIndex, BadArgumentsAndFiles) {
  EXPECT_THROW(EmbeddingIndex({"m", "x", 4}), InvalidArgument);
  EXPECT_THROW(EmbeddingIndex({"m", "c", 0}), InvalidArgument);
  EmbeddingIndex index({"m", "c", 4});
  EXPECT_THROW(index.add({"a"}, at::randn({1, 5})), InvalidArgument);
  EXPECT_THROW(index.add({"a", "b"}, at::randn({1, 4})), InvalidArgument);
  EXPECT_THROW(index.add({"a", "a"}, at::randn({2, 4})), InvalidArgument);
  EXPECT_THROW(index.add({"a"}, at::full({1, 4}, NAN)), InvalidArgument);
  EXPECT_THROW(index.search(at::randn({1, 4}), 0), InvalidArgument);
  EXPECT_THROW(index.search(at::randn({1, 3}), 1), InvalidArgument);
  EXPECT_TRUE(index.search(at::randn({2, 4}), 3)[0].empty());  // empty index

  const auto garbage = temp_path("index_garbage.safetensors");
  std::ofstream(garbage) << "definitely not safetensors";
  EXPECT_THROW(EmbeddingIndex::load(garbage), CheckpointError);
  EXPECT_THROW(EmbeddingIndex::load(temp_path("index_absent.safetensors")), CheckpointError);
  ::unlink(garbage.c_str());
}

}  // namespace
