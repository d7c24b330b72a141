// Model::embed_image with decoding pipelined against the vision forward (preprocess_threads,
// on_batch): the same rows as batch-by-batch embedding, bad images surfacing in order with their
// name, and what changing the batch size does to the rows.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "internvl/internvl.h"
#include "support/files.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;
using namespace internvl;

namespace {

// Every image file of the fixtures' images/ folder, sorted: photos and the synthetic edge cases
// (EXIF orientation, 16-bit grey, palette GIF, RGBA, odd aspect ratios).
std::vector<std::string> fixture_image_files() {
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(internvl::testing::images_dir())) {
    const auto ext = entry.path().extension().string();
    if (ext == ".jpg" || ext == ".png" || ext == ".gif") files.push_back(entry.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::vector<Image> open(const std::vector<std::string>& files) {
  std::vector<Image> images;
  for (const auto& f : files) images.push_back(Image::from_file(f));
  return images;
}

::testing::AssertionResult BitwiseEqual(const Matrix& actual, const Matrix& expected) {
  if (actual.rows() != expected.rows() || actual.cols() != expected.cols()) {
    return ::testing::AssertionFailure() << "shape " << actual.rows() << "x" << actual.cols() << " vs "
                                         << expected.rows() << "x" << expected.cols();
  }
  for (Eigen::Index r = 0; r < actual.rows(); ++r) {
    for (Eigen::Index c = 0; c < actual.cols(); ++c) {
      if (actual(r, c) != expected(r, c)) {
        return ::testing::AssertionFailure() << "first difference at (" << r << ", " << c << "): " << actual(r, c)
                                             << " vs " << expected(r, c) << "; max abs difference "
                                             << (actual - expected).cwiseAbs().maxCoeff();
      }
    }
  }
  return ::testing::AssertionSuccess();
}

// fn() throws exactly ErrorType (not just any internvl::Error) whose message contains `needle`.
template <typename ErrorType, typename Fn>
::testing::AssertionResult ThrowsNaming(Fn&& fn, const std::string& needle) {
  try {
    fn();
  } catch (const ErrorType& e) {
    if (std::string(e.what()).find(needle) != std::string::npos) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "message does not name '" << needle << "': " << e.what();
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "wrong exception type: " << e.what();
  }
  return ::testing::AssertionFailure() << "nothing thrown";
}

class EmbedPipeline : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    model_ = std::make_unique<Model>(Model::load(internvl::testing::fixture_path(GetParam())));
    files_ = fixture_image_files();
    ASSERT_GE(files_.size(), 6u) << "too few fixture images in " << internvl::testing::images_dir();
    images_ = open(files_);
  }

  // The path without the pool: one embed_image call per batch, preprocessing on this thread.
  Matrix batch_by_batch(const std::vector<Image>& images, EmbedOptions options) const {
    options.preprocess_threads = 0;
    Matrix out(0, 0);
    for (size_t start = 0; start < images.size(); start += static_cast<size_t>(options.batch_size)) {
      const size_t end = std::min(images.size(), start + static_cast<size_t>(options.batch_size));
      const std::vector<Image> batch(images.begin() + static_cast<std::ptrdiff_t>(start),
                                     images.begin() + static_cast<std::ptrdiff_t>(end));
      const Matrix rows = model_->embed_image(batch, options);
      Matrix grown(out.rows() + rows.rows(), rows.cols());
      if (out.rows() > 0) grown.topRows(out.rows()) = out;
      grown.bottomRows(rows.rows()) = rows;
      out = std::move(grown);
    }
    return out;
  }

  std::unique_ptr<Model> model_;
  std::vector<std::string> files_;
  std::vector<Image> images_;
};

TEST_P(EmbedPipeline, OverlappedEqualsBatchByBatchBitwise) {
  for (const auto mode : {EmbedMode::kC, EmbedMode::kG}) {
    for (const int batch : {1, 3, 4}) {  // 3 and 4 leave a short last batch
      EmbedOptions options;
      options.mode = mode;
      options.batch_size = batch;
      const Matrix expected = batch_by_batch(images_, options);
      ASSERT_EQ(expected.rows(), static_cast<Eigen::Index>(images_.size()));
      for (const int threads : {1, 2, 8}) {  // 8: more threads than batches ahead
        SCOPED_TRACE("mode " + std::string(mode == EmbedMode::kG ? "G" : "C") + ", batch " + std::to_string(batch) +
                     ", threads " + std::to_string(threads));
        options.preprocess_threads = threads;
        EXPECT_TRUE(BitwiseEqual(model_->embed_image(images_, options), expected));

        // Streamed: the same rows, batch by batch in order, each batch's first index given.
        Matrix streamed(static_cast<Eigen::Index>(images_.size()), expected.cols());
        std::vector<int64_t> firsts;
        options.on_batch = [&](int64_t first, const Matrix& rows) {
          firsts.push_back(first);
          streamed.middleRows(first, rows.rows()) = rows;
          return true;
        };
        const Matrix returned = model_->embed_image(images_, options);
        options.on_batch = nullptr;
        EXPECT_EQ(returned.rows(), 0);
        EXPECT_EQ(returned.cols(), expected.cols());
        std::vector<int64_t> expected_firsts;
        for (size_t s = 0; s < images_.size(); s += static_cast<size_t>(batch)) expected_firsts.push_back(static_cast<int64_t>(s));
        EXPECT_EQ(firsts, expected_firsts);
        EXPECT_TRUE(BitwiseEqual(streamed, expected));
      }
    }
  }
}

TEST_P(EmbedPipeline, NormalizedStreamedRowsAreUnitAndSameDirection) {
  EmbedOptions options;
  options.batch_size = 4;
  const Matrix raw = model_->embed_image(images_, options);
  options.normalize = true;
  Matrix unit(raw.rows(), raw.cols());
  options.on_batch = [&](int64_t first, const Matrix& rows) {
    unit.middleRows(first, rows.rows()) = rows;
    return true;
  };
  model_->embed_image(images_, options);
  EXPECT_TRUE(unit.rowwise().norm().isApproxToConstant(1.0f, 1e-5f));
  EXPECT_TRUE(unit.isApprox(raw.rowwise().normalized(), 1e-6f));
}

TEST_P(EmbedPipeline, OnBatchFalseStopsAfterThatBatch) {
  EmbedOptions options;
  options.batch_size = 2;
  int calls = 0;
  options.on_batch = [&](int64_t first, const Matrix& rows) {
    ++calls;
    EXPECT_EQ(first, 2 * (calls - 1));
    return calls < 2;
  };
  EXPECT_EQ(model_->embed_image(images_, options).rows(), 0);
  EXPECT_EQ(calls, 2);
  // A callback that throws: the error comes out of embed_image, and the pool shuts down cleanly.
  options.on_batch = [](int64_t, const Matrix&) -> bool { throw InvalidArgument("from the callback"); };
  EXPECT_TRUE(ThrowsNaming<InvalidArgument>([&] { model_->embed_image(images_, options); }, "from the callback"));
}

TEST_P(EmbedPipeline, UnreadableImageInTheMiddleThrowsImageErrorNamingIt) {
  internvl::testing::TempDir dir("embed_pipeline");
  const std::string corrupt = dir.file("corrupt_in_the_middle.jpg");
  internvl::testing::write_bytes(corrupt, "\xFF\xD8\xFF this is not really a JPEG");
  const std::string missing = dir.file("missing_in_the_middle.png");  // never written
  for (const auto& bad : {corrupt, missing}) {
    auto files = files_;
    const size_t at = files.size() / 2;
    files.insert(files.begin() + static_cast<std::ptrdiff_t>(at), bad);
    const auto images = open(files);
    const std::string name = fs::path(bad).filename().string();
    for (const int threads : {0, 1, 2}) {
      SCOPED_TRACE(name + ", threads " + std::to_string(threads));
      EmbedOptions options;
      options.batch_size = 2;
      options.preprocess_threads = threads;
      EXPECT_TRUE(ThrowsNaming<ImageError>([&] { model_->embed_image(images, options); }, name));
      // Streamed: every batch before the bad image's is delivered, none after it.
      std::vector<int64_t> firsts;
      options.on_batch = [&](int64_t first, const Matrix&) {
        firsts.push_back(first);
        return true;
      };
      EXPECT_TRUE(ThrowsNaming<ImageError>([&] { model_->embed_image(images, options); }, name));
      std::vector<int64_t> expected;
      for (size_t s = 0; s < at - at % 2; s += 2) expected.push_back(static_cast<int64_t>(s));
      EXPECT_EQ(firsts, expected);
    }
  }
}

// What changing the batch size does: each image's arithmetic is the same, but GEMM blocking
// depends on the number of rows, so the rows are not bitwise equal (oneDNN/MKL on 2 cores:
// rel-L2 2.6e-7, max abs 3.3e-7 of 1.46 against batch 1); they agree to float32 rounding.
TEST_P(EmbedPipeline, BatchSizesGiveTheSameRows) {
  EmbedOptions options;
  options.batch_size = 1;
  const Matrix one = model_->embed_image(images_, options);
  for (const int batch : {2, 5, static_cast<int>(images_.size())}) {
    SCOPED_TRACE("batch " + std::to_string(batch));
    options.batch_size = batch;
    const Matrix rows = model_->embed_image(images_, options);
    ASSERT_EQ(rows.rows(), one.rows());
    const double rel = (rows - one).norm() / one.norm();
    const double max_abs = (rows - one).cwiseAbs().maxCoeff();
    const double scale = one.cwiseAbs().maxCoeff();
    EXPECT_LE(rel, 2e-6) << "max abs " << max_abs;
    EXPECT_LE(max_abs, 2e-6 * scale) << "rel " << rel;
  }
}

TEST_P(EmbedPipeline, BadOptionsAreInvalidArgumentNamingThem) {
  EmbedOptions options;
  options.preprocess_threads = -1;
  EXPECT_TRUE(ThrowsNaming<InvalidArgument>([&] { model_->embed_image(images_, options); }, "preprocess_threads"));
  options.preprocess_threads = 1;
  options.on_batch = [](int64_t, const Matrix&) { return true; };
  EXPECT_TRUE(ThrowsNaming<InvalidArgument>([&] { model_->embed_text({"a cat"}, options); }, "on_batch"));
  const Matrix weights = Matrix::Ones(1, model_->embed_text({"a cat"}).cols());
  EXPECT_TRUE(ThrowsNaming<InvalidArgument>([&] { model_->classify(images_, weights, {"cat"}, 1, options); },
                                            "on_batch"));
  // No images: nothing to embed, nothing called.
  bool called = false;
  options.on_batch = [&](int64_t, const Matrix&) { return called = true; };
  EXPECT_EQ(model_->embed_image({}, options).rows(), 0);
  EXPECT_FALSE(called);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, EmbedPipeline,
                         ::testing::ValuesIn(internvl::testing::fixtures_with_architecture("InternVLModel")),
                         internvl::testing::FixtureName());
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(EmbedPipeline);

}  // namespace
