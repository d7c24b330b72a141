// Replays every committed fuzz input (seed corpora in tests/fuzz/corpus/<target>/ and the inputs
// that once found bugs in tests/data/fuzz_regressions/<target>/) through the same entry points the
// fuzzers use. Each must end in success or an internvl::Error; before its fix, each regression
// input crashed, hung or threw something else.
#include <dirent.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz/fuzz_entries.h"

namespace {

std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name != "." && name != ".." && name != "README.md") out.push_back(dir + "/" + name);
    }
    ::closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void replay(const std::string& root, bool require_inputs) {
  std::size_t total = 0;
  for (const auto& target : internvl::fuzz::targets()) {
    const auto files = files_in(root + "/" + target.name);
    if (require_inputs) EXPECT_FALSE(files.empty()) << "no seed inputs for " << target.name;
    for (const auto& file : files) {
      SCOPED_TRACE(file);
      const auto bytes = read_bytes(file);
      EXPECT_NO_THROW(target.entry(bytes.data(), bytes.size()));
      ++total;
    }
  }
  ::testing::Test::RecordProperty("inputs", static_cast<int>(total));
}

TEST(FuzzCorpus, SeedInputsEndInSuccessOrTypedError) { replay(INTERNVL_FUZZ_CORPUS_DIR, true); }

TEST(FuzzRegressions, InputsThatFoundBugsEndInSuccessOrTypedError) { replay(INTERNVL_FUZZ_REGRESSIONS_DIR, false); }

// Every entry copes with an empty input (and a null pointer with it).
TEST(FuzzEntries, EmptyInputIsHandled) {
  for (const auto& target : internvl::fuzz::targets()) {
    SCOPED_TRACE(target.name);
    EXPECT_NO_THROW(target.entry(nullptr, 0));
  }
}

}  // namespace
