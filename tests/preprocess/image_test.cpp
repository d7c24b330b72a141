// Decoding: every fixture image decodes with its stored size; the entry points agree with each
// other; 16-bit clipping; GIF interlacing and frame placement; bad input.
// Image lists come from images/images.json (never hard-coded).
#include <gif_lib.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

#include "internvl/error.h"
#include "preprocess/image.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;
using internvl::ImageError;
using internvl::InvalidArgument;
using internvl::preprocess::decode_bytes;
using internvl::preprocess::decode_file;
using internvl::preprocess::from_mat;
using internvl::preprocess::from_rgb;
using internvl::preprocess::RgbImage;
namespace t = internvl::testing;

namespace {

nlohmann::json images_json() { return t::read_json((fs::path(t::images_dir()) / "images.json").string()); }

std::string image_path(const std::string& file) { return (fs::path(t::images_dir()) / file).string(); }

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// A scratch file removed at scope exit.
struct TempFile {
  std::string path;
  explicit TempFile(const std::string& name, const std::vector<uint8_t>& bytes) {
    path = (fs::temp_directory_path() / (std::to_string(::getpid()) + "_" + name)).string();
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  ~TempFile() { std::remove(path.c_str()); }
};

::testing::AssertionResult SameImage(const RgbImage& a, const RgbImage& b) {
  if (a.width != b.width || a.height != b.height) {
    return ::testing::AssertionFailure() << "size " << a.width << "x" << a.height << " vs " << b.width << "x"
                                         << b.height;
  }
  if (a.pixels.size() != b.pixels.size()) return ::testing::AssertionFailure() << "buffer sizes differ";
  for (std::size_t i = 0; i < a.pixels.size(); ++i) {
    if (a.pixels[i] != b.pixels[i]) {
      const std::size_t p = i / 3;
      return ::testing::AssertionFailure() << "first difference at (x=" << p % a.width << ", y=" << p / a.width
                                           << ", c=" << i % 3 << "): " << int(a.pixels[i]) << " vs "
                                           << int(b.pixels[i]);
    }
  }
  return ::testing::AssertionSuccess();
}

bool valid_image(const RgbImage& image) {
  return image.width > 0 && image.height > 0 &&
         image.pixels.size() == static_cast<std::size_t>(image.width) * image.height * 3;
}

template <typename Fn>
::testing::AssertionResult ThrowsMentioning(Fn&& fn, const std::string& needle) {
  try {
    fn();
  } catch (const ImageError& e) {
    if (std::string(e.what()).find(needle) == std::string::npos) {
      return ::testing::AssertionFailure() << "ImageError without '" << needle << "': " << e.what();
    }
    return ::testing::AssertionSuccess() << e.what();
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "wrong exception type: " << e.what();
  }
  return ::testing::AssertionFailure() << "no exception";
}

}  // namespace

TEST(Decode, EveryImageHasItsStoredSizeAndOrientation) {
  const auto list = images_json();
  ASSERT_FALSE(list.empty());
  for (const auto& entry : list) {
    const std::string file = entry.at("file");
    SCOPED_TRACE(file);
    const RgbImage image = decode_file(image_path(file));
    ASSERT_TRUE(valid_image(image));
    // EXIF orientation is ignored: width x height as stored.
    EXPECT_EQ(image.width, entry.at("width").get<int>());
    EXPECT_EQ(image.height, entry.at("height").get<int>());
  }
}

TEST(Decode, DecodeBytesEqualsDecodeFile) {
  for (const auto& entry : images_json()) {
    const std::string file = entry.at("file");
    SCOPED_TRACE(file);
    const auto bytes = read_bytes(image_path(file));
    ASSERT_FALSE(bytes.empty());
    EXPECT_TRUE(SameImage(decode_bytes(bytes.data(), bytes.size(), file), decode_file(image_path(file))));
  }
}

// from_mat over OpenCV's own decoding of every non-GIF image (OpenCV cannot read GIF): PNG and
// others with IMREAD_UNCHANGED (grey, BGRA, 16-bit), JPEG with IMREAD_COLOR | IGNORE_ORIENTATION.
TEST(Decode, FromMatOfOpenCvDecodeEqualsDecodeFile) {
  int checked = 0;
  for (const auto& entry : images_json()) {
    const std::string file = entry.at("file");
    const std::string format = entry.value("format", "");
    if (format == "GIF") continue;
    SCOPED_TRACE(file);
    const int flags = format == "JPEG" ? (cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION) : cv::IMREAD_UNCHANGED;
    const cv::Mat mat = cv::imread(image_path(file), flags);
    ASSERT_FALSE(mat.empty());
    EXPECT_TRUE(SameImage(from_mat(mat), decode_file(image_path(file))));
    ++checked;
  }
  if (checked == 0) GTEST_SKIP() << "no image OpenCV can read";
}

TEST(Decode, GreyAndAlphaImagesFollowPilConvert) {
  int checked = 0;
  for (const auto& entry : images_json()) {
    const std::string file = entry.at("file");
    const std::string mode = entry.value("pil_mode", "");
    if (entry.value("format", "") == "GIF" || (mode != "L" && mode != "RGBA" && mode != "LA")) continue;
    SCOPED_TRACE(file);
    const cv::Mat mat = cv::imread(image_path(file), cv::IMREAD_UNCHANGED);
    ASSERT_EQ(mat.depth(), CV_8U);
    const RgbImage image = decode_file(image_path(file));
    for (int y = 0; y < mat.rows; ++y) {
      for (int x = 0; x < mat.cols; ++x) {
        const uint8_t* p = mat.ptr<uint8_t>(y) + static_cast<std::size_t>(x) * mat.channels();
        const uint8_t* q = image.row(y) + 3 * x;
        if (mat.channels() == 1) {
          ASSERT_TRUE(q[0] == p[0] && q[1] == p[0] && q[2] == p[0]) << "grey not replicated at " << x << "," << y;
        } else {
          // Alpha dropped, not composited: the stored colour of transparent pixels survives.
          ASSERT_TRUE(q[0] == p[2] && q[1] == p[1] && q[2] == p[0]) << "colour changed at " << x << "," << y;
        }
      }
    }
    ++checked;
  }
  if (checked == 0) GTEST_SKIP() << "no grey/alpha image in images.json";
}

// Pillow opens a 16-bit grey PNG as mode I; convert('RGB') clips each value to 0..255.
TEST(Decode, SixteenBitGreyIsClippedNotScaled) {
  int checked = 0;
  for (const auto& entry : images_json()) {
    const std::string file = entry.at("file");
    if (entry.value("pil_mode", "") != "I") continue;
    SCOPED_TRACE(file);
    const cv::Mat raw = cv::imread(image_path(file), cv::IMREAD_UNCHANGED);
    ASSERT_EQ(raw.type(), CV_16UC1);
    const RgbImage image = decode_file(image_path(file));
    ASSERT_EQ(image.width, raw.cols);
    ASSERT_EQ(image.height, raw.rows);
    for (int y = 0; y < raw.rows; ++y) {
      for (int x = 0; x < raw.cols; ++x) {
        const uint16_t v = raw.at<uint16_t>(y, x);
        const uint8_t expected = v > 255 ? 255 : static_cast<uint8_t>(v);
        const uint8_t* q = image.row(y) + 3 * x;
        ASSERT_TRUE(q[0] == expected && q[1] == expected && q[2] == expected)
            << "at " << x << "," << y << ": raw " << v << " -> " << int(q[0]);
      }
    }
    ++checked;
  }
  if (checked == 0) GTEST_SKIP() << "no 16-bit grey image in images.json";
}

TEST(FromMat, SixteenBitConversions) {
  // Grey: clipped (mode I); colour: most significant byte (Pillow's RGB;16B rawmode).
  cv::Mat grey(2, 3, CV_16UC1);
  const uint16_t grey_values[6] = {0, 1, 254, 255, 256, 65535};
  std::memcpy(grey.data, grey_values, sizeof(grey_values));
  const RgbImage g = from_mat(grey);
  const uint8_t grey_expected[6] = {0, 1, 254, 255, 255, 255};
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(g.pixels[3 * i], grey_expected[i]);
    EXPECT_EQ(g.pixels[3 * i + 2], grey_expected[i]);
  }
  cv::Mat bgr(1, 1, CV_16UC3, cv::Scalar(0x1234, 0xABCD, 0x00FF));
  const RgbImage c = from_mat(bgr);
  EXPECT_EQ(c.pixels[0], 0x00);  // R = v(2) >> 8
  EXPECT_EQ(c.pixels[1], 0xAB);
  EXPECT_EQ(c.pixels[2], 0x12);
}

TEST(FromMat, BgrAndBgraChannelOrder) {
  cv::Mat bgr(1, 2, CV_8UC3, cv::Scalar(10, 20, 30));
  RgbImage a = from_mat(bgr);
  EXPECT_EQ(a.pixels, (std::vector<uint8_t>{30, 20, 10, 30, 20, 10}));
  cv::Mat bgra(1, 1, CV_8UC4, cv::Scalar(1, 2, 3, 0));
  RgbImage b = from_mat(bgra);
  EXPECT_EQ(b.pixels, (std::vector<uint8_t>{3, 2, 1}));
  // A non-contiguous view (ROI) is read row by row.
  cv::Mat big(4, 4, CV_8UC3);
  cv::randu(big, 0, 256);
  const cv::Mat roi = big(cv::Rect(1, 1, 2, 3));
  const RgbImage r = from_mat(roi);
  ASSERT_EQ(r.width, 2);
  ASSERT_EQ(r.height, 3);
  for (int y = 0; y < 3; ++y) {
    for (int x = 0; x < 2; ++x) {
      const cv::Vec3b p = roi.at<cv::Vec3b>(y, x);
      EXPECT_EQ(r.row(y)[3 * x], p[2]);
      EXPECT_EQ(r.row(y)[3 * x + 1], p[1]);
      EXPECT_EQ(r.row(y)[3 * x + 2], p[0]);
    }
  }
}

TEST(FromMat, RejectsUnsupportedTypes) {
  EXPECT_THROW(from_mat(cv::Mat(4, 4, CV_32FC3, cv::Scalar(0.5))), InvalidArgument);
  EXPECT_THROW(from_mat(cv::Mat(4, 4, CV_8UC2, cv::Scalar(1))), InvalidArgument);
  EXPECT_THROW(from_mat(cv::Mat(4, 4, CV_16SC1, cv::Scalar(1))), InvalidArgument);
  EXPECT_THROW(from_mat(cv::Mat()), InvalidArgument);
}

TEST(FromRgb, RoundTripWithStride) {
  const int width = 7, height = 5;
  const std::size_t stride = width * 3 + 5;
  std::vector<uint8_t> buffer(stride * height, 0xEE);
  std::mt19937 rng(123);
  for (int y = 0; y < height; ++y) {
    for (int i = 0; i < width * 3; ++i) buffer[y * stride + i] = static_cast<uint8_t>(rng());
  }
  const RgbImage image = from_rgb(buffer.data(), width, height, stride);
  ASSERT_EQ(image.width, width);
  ASSERT_EQ(image.height, height);
  for (int y = 0; y < height; ++y) {
    EXPECT_EQ(0, std::memcmp(image.row(y), buffer.data() + y * stride, width * 3)) << "row " << y;
  }
  // Packed (stride 0 = width * 3) round trip.
  const RgbImage again = from_rgb(image.pixels.data(), width, height);
  EXPECT_TRUE(SameImage(again, image));
}

TEST(FromRgb, RejectsBadArguments) {
  std::vector<uint8_t> buffer(64 * 3, 0);
  EXPECT_THROW(from_rgb(nullptr, 4, 4), InvalidArgument);
  EXPECT_THROW(from_rgb(buffer.data(), 0, 4), InvalidArgument);
  EXPECT_THROW(from_rgb(buffer.data(), 4, 0), InvalidArgument);
  EXPECT_THROW(from_rgb(buffer.data(), -1, 4), InvalidArgument);
  EXPECT_THROW(from_rgb(buffer.data(), 4, 4, 11), InvalidArgument);  // stride < width * 3
}

// ---- GIF -------------------------------------------------------------------------------------

namespace {

struct GifWriter {
  std::vector<uint8_t> bytes;
  static int write(GifFileType* gif, const GifByteType* data, int length) {
    auto* self = static_cast<GifWriter*>(gif->UserData);
    self->bytes.insert(self->bytes.end(), data, data + length);
    return length;
  }
};

// Encodes one frame (indices row-major, frame_w x frame_h at (left, top)) on a screen of
// screen_w x screen_h with a 4-colour global palette.
std::vector<uint8_t> encode_gif(int screen_w, int screen_h, int left, int top, int frame_w, int frame_h,
                                const std::vector<uint8_t>& indices, bool interlace, int transparency) {
  GifWriter writer;
  int error = 0;
  GifFileType* gif = EGifOpen(&writer, GifWriter::write, &error);
  if (gif == nullptr) return {};
  const GifColorType colors[4] = {{0, 0, 0}, {200, 10, 20}, {30, 220, 40}, {50, 60, 230}};
  ColorMapObject* map = GifMakeMapObject(4, colors);
  EGifSetGifVersion(gif, true);
  EGifPutScreenDesc(gif, screen_w, screen_h, 2, 2, map);
  if (transparency >= 0) {
    GraphicsControlBlock gcb{};
    gcb.DisposalMode = DISPOSAL_UNSPECIFIED;
    gcb.TransparentColor = transparency;
    GifByteType ext[4];
    const std::size_t n = EGifGCBToExtension(&gcb, ext);
    EGifPutExtension(gif, GRAPHICS_EXT_FUNC_CODE, static_cast<int>(n), ext);
  }
  EGifPutImageDesc(gif, left, top, frame_w, frame_h, interlace, nullptr);
  std::vector<GifPixelType> line(frame_w);
  auto put_row = [&](int row) {
    std::memcpy(line.data(), indices.data() + static_cast<std::size_t>(row) * frame_w, frame_w);
    EGifPutLine(gif, line.data(), frame_w);
  };
  if (interlace) {
    const int start[4] = {0, 4, 2, 1}, step[4] = {8, 8, 4, 2};
    for (int pass = 0; pass < 4; ++pass) {
      for (int row = start[pass]; row < frame_h; row += step[pass]) put_row(row);
    }
  } else {
    for (int row = 0; row < frame_h; ++row) put_row(row);
  }
  EGifCloseFile(gif, &error);
  GifFreeMapObject(map);
  return writer.bytes;
}

}  // namespace

TEST(DecodeGif, InterlacedAndProgressiveFramesDecodeAlike) {
  const int w = 13, h = 11;
  std::vector<uint8_t> indices(w * h);
  for (int i = 0; i < w * h; ++i) indices[i] = static_cast<uint8_t>((i * 7 + i / w) % 4);
  const auto plain = encode_gif(w, h, 0, 0, w, h, indices, false, -1);
  const auto interlaced = encode_gif(w, h, 0, 0, w, h, indices, true, -1);
  ASSERT_FALSE(plain.empty());
  ASSERT_FALSE(interlaced.empty());
  const RgbImage a = decode_bytes(plain.data(), plain.size(), "plain.gif");
  const RgbImage b = decode_bytes(interlaced.data(), interlaced.size(), "interlaced.gif");
  ASSERT_EQ(a.width, w);
  ASSERT_EQ(a.height, h);
  EXPECT_TRUE(SameImage(a, b));
  const uint8_t palette[4][3] = {{0, 0, 0}, {200, 10, 20}, {30, 220, 40}, {50, 60, 230}};
  for (int i = 0; i < w * h; ++i) {
    ASSERT_EQ(0, std::memcmp(&a.pixels[3 * i], palette[indices[i]], 3)) << "pixel " << i;
  }
}

// Pillow 9.4, first frame: pixels outside the frame keep the transparency index when the frame
// has one (else index 0); transparency itself is ignored by convert('RGB').
TEST(DecodeGif, FrameOffsetAndTransparency) {
  const int sw = 8, sh = 6, left = 2, top = 1, fw = 4, fh = 3;
  std::vector<uint8_t> indices(fw * fh, 1);
  indices[0] = 2;  // the transparency index inside the frame still shows its palette colour
  const uint8_t palette[4][3] = {{0, 0, 0}, {200, 10, 20}, {30, 220, 40}, {50, 60, 230}};
  for (int transparency : {-1, 2}) {
    SCOPED_TRACE(transparency);
    const auto bytes = encode_gif(sw, sh, left, top, fw, fh, indices, false, transparency);
    const RgbImage image = decode_bytes(bytes.data(), bytes.size(), "offset.gif");
    ASSERT_EQ(image.width, sw);
    ASSERT_EQ(image.height, sh);
    const int outside = transparency >= 0 ? transparency : 0;
    for (int y = 0; y < sh; ++y) {
      for (int x = 0; x < sw; ++x) {
        const bool inside = x >= left && x < left + fw && y >= top && y < top + fh;
        const int index = inside ? indices[(y - top) * fw + (x - left)] : outside;
        ASSERT_EQ(0, std::memcmp(image.row(y) + 3 * x, palette[index], 3)) << x << "," << y;
      }
    }
  }
}

// ---- bad input -------------------------------------------------------------------------------

TEST(DecodeErrors, MissingFileNamesThePath) {
  const std::string path = (fs::temp_directory_path() / "internvl_no_such_image_12345.png").string();
  EXPECT_TRUE(ThrowsMentioning([&] { decode_file(path); }, path));
}

TEST(DecodeErrors, DirectoryIsNotAnImage) {
  EXPECT_TRUE(ThrowsMentioning([&] { decode_file(t::images_dir()); }, t::images_dir()));
}

TEST(DecodeErrors, EmptyFileAndEmptyBuffer) {
  TempFile empty("empty.png", {});
  EXPECT_TRUE(ThrowsMentioning([&] { decode_file(empty.path); }, empty.path));
  const uint8_t byte = 0;
  EXPECT_THROW(decode_bytes(&byte, 0, "zero"), ImageError);
  EXPECT_THROW(decode_bytes(nullptr, 0, "null"), ImageError);
}

TEST(DecodeErrors, RandomBytesAreNotAnImage) {
  std::mt19937 rng(7);
  std::vector<uint8_t> noise(4096);
  for (auto& b : noise) b = static_cast<uint8_t>(rng());
  TempFile file("noise.jpg", noise);
  EXPECT_TRUE(ThrowsMentioning([&] { decode_file(file.path); }, file.path));
  EXPECT_TRUE(ThrowsMentioning([&] { decode_bytes(noise.data(), noise.size(), "noise-buffer"); }, "noise-buffer"));
  const std::string text = "this is not an image, just some text";
  EXPECT_THROW(decode_bytes(reinterpret_cast<const uint8_t*>(text.data()), text.size()), ImageError);
  // Magic numbers alone are not images.
  const uint8_t jpeg_magic[] = {0xFF, 0xD8, 0xFF, 0xE0};
  EXPECT_THROW(decode_bytes(jpeg_magic, sizeof(jpeg_magic)), ImageError);
  const uint8_t gif_magic[] = {'G', 'I', 'F', '8', '9', 'a'};
  EXPECT_THROW(decode_bytes(gif_magic, sizeof(gif_magic)), ImageError);
  const uint8_t png_magic[] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  EXPECT_THROW(decode_bytes(png_magic, sizeof(png_magic)), ImageError);
}

// A truncated file must either throw ImageError or decode to a valid image; never crash.
TEST(DecodeErrors, TruncatedFilesOfEveryFormat) {
  for (const auto& entry : images_json()) {
    const std::string file = entry.at("file");
    SCOPED_TRACE(file);
    const auto bytes = read_bytes(image_path(file));
    for (std::size_t keep : {bytes.size() / 2, bytes.size() - 1, std::size_t{16}}) {
      if (keep == 0 || keep >= bytes.size()) continue;
      const std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(keep));
      TempFile truncated("truncated_" + file, cut);
      try {
        const RgbImage image = decode_file(truncated.path);
        EXPECT_TRUE(valid_image(image)) << "keep " << keep;
      } catch (const ImageError& e) {
        EXPECT_NE(std::string(e.what()).find(truncated.path), std::string::npos) << e.what();
      }
    }
  }
}

// Truncated JPEGs are rejected (libjpeg would silently fill the missing part with grey, where
// Pillow raises "image file is truncated").
TEST(DecodeErrors, TruncatedJpegIsRejected) {
  int checked = 0;
  for (const auto& entry : images_json()) {
    if (entry.value("format", "") != "JPEG") continue;
    const std::string file = entry.at("file");
    SCOPED_TRACE(file);
    const auto bytes = read_bytes(image_path(file));
    const std::vector<uint8_t> half(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(bytes.size() / 2));
    EXPECT_THROW(decode_bytes(half.data(), half.size(), file), ImageError);
    ++checked;
  }
  if (checked == 0) GTEST_SKIP() << "no JPEG in images.json";
}

TEST(DecodeErrors, CorruptedPayloadDoesNotCrash) {
  std::mt19937 rng(99);
  for (const auto& entry : images_json()) {
    const std::string file = entry.at("file");
    SCOPED_TRACE(file);
    auto bytes = read_bytes(image_path(file));
    // Overwrite a run of bytes after the header with noise.
    const std::size_t begin = std::min<std::size_t>(bytes.size() / 3, bytes.size());
    for (std::size_t i = begin; i < std::min(bytes.size(), begin + 64); ++i) bytes[i] = static_cast<uint8_t>(rng());
    try {
      const RgbImage image = decode_bytes(bytes.data(), bytes.size(), file);
      EXPECT_TRUE(valid_image(image));
    } catch (const ImageError&) {
    }
  }
}

// 16-bit PNGs written here (not fixture data): grey is clipped (Pillow mode I), colour keeps the
// most significant byte (Pillow rawmode RGB;16B).
TEST(Decode, SixteenBitPngGreyAndColour) {
  cv::Mat grey(3, 4, CV_16UC1);
  cv::Mat colour(3, 4, CV_16UC3);
  std::mt19937 rng(3);
  for (int y = 0; y < 3; ++y) {
    for (int x = 0; x < 4; ++x) {
      grey.at<uint16_t>(y, x) = static_cast<uint16_t>((x + 4 * y) % 3 == 0 ? rng() % 300 : rng());
      colour.at<cv::Vec3w>(y, x) = cv::Vec3w(static_cast<uint16_t>(rng()), static_cast<uint16_t>(rng()),
                                             static_cast<uint16_t>(rng()));
    }
  }
  std::vector<uint8_t> png;
  ASSERT_TRUE(cv::imencode(".png", grey, png));
  const RgbImage g = decode_bytes(png.data(), png.size(), "grey16.png");
  ASSERT_TRUE(cv::imencode(".png", colour, png));
  const RgbImage c = decode_bytes(png.data(), png.size(), "colour16.png");
  ASSERT_EQ(g.width, 4);
  ASSERT_EQ(c.height, 3);
  for (int y = 0; y < 3; ++y) {
    for (int x = 0; x < 4; ++x) {
      const uint16_t v = grey.at<uint16_t>(y, x);
      const uint8_t clipped = v > 255 ? 255 : static_cast<uint8_t>(v);
      EXPECT_EQ(g.row(y)[3 * x], clipped);
      EXPECT_EQ(g.row(y)[3 * x + 1], clipped);
      const cv::Vec3w bgr = colour.at<cv::Vec3w>(y, x);
      EXPECT_EQ(c.row(y)[3 * x], bgr[2] >> 8);
      EXPECT_EQ(c.row(y)[3 * x + 1], bgr[1] >> 8);
      EXPECT_EQ(c.row(y)[3 * x + 2], bgr[0] >> 8);
    }
  }
}

// A header announcing a gigantic frame is refused before any pixel buffer is allocated.
TEST(DecodeErrors, OversizedGifIsRefused) {
  const std::vector<uint8_t> gif = {'G', 'I', 'F', '8', '9', 'a', 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00,
                                    0x2C, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x08, 0x01,
                                    0x00, 0x00, 0x3B};
  EXPECT_TRUE(ThrowsMentioning([&] { decode_bytes(gif.data(), gif.size(), "huge.gif"); }, "too large"));
}
