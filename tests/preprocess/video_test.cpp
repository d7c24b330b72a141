// Video decoding and frame sampling against the video fixtures (fixtures README §5): frame counts,
// fps and frame times equal decord's, decoded frames equal decord's uint8 frames exactly, both
// official samplers equal every reference case, and bad input gives typed errors. Driven by
// videos/videos.json and video-reference/reference.json{,.safetensors} only.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include "internvl/error.h"
#include "internvl/video.h"
#include "preprocess/video.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;
namespace p = internvl::preprocess;
using internvl::ImageError;
using internvl::InvalidArgument;
using internvl::testing::fixtures_dir;
using nlohmann::json;

namespace {

const char* kReference = "video-reference";

std::string videos_dir() { return (fs::path(fixtures_dir()) / "videos").string(); }
std::string video_path(const std::string& file) { return (fs::path(videos_dir()) / file).string(); }

const json& reference() {
  static const json ref = internvl::testing::fixture_reference(kReference);
  return ref;
}

const json& videos_json() {
  static const json meta = internvl::testing::read_json(video_path("videos.json"));
  return meta;
}

const json& video_meta(const std::string& file) {
  for (const auto& v : videos_json().at("videos")) {
    if (v.at("file") == file) return v;
  }
  throw std::runtime_error(file + " is not in videos.json");
}

// Files of reference.json `sampling` that decord could open (everything but the broken ones).
bool have_reference() {
  return fs::exists(fs::path(internvl::testing::fixture_path(kReference)) / "reference.json");
}

// Empty when the fixtures are missing (then ReferenceListsVideosThatExist fails, instead of the
// parameter generator throwing before main).
std::vector<std::string> good_videos() {
  std::vector<std::string> out;
  if (!have_reference()) return out;
  for (const auto& [file, entry] : reference().at("sampling").items()) {
    if (entry.contains("decord_len")) out.push_back(file);
  }
  return out;
}

std::vector<std::string> broken_videos() {
  std::vector<std::string> out;
  if (!have_reference()) return out;
  for (const auto& [file, entry] : reference().at("sampling").items()) {
    if (!entry.contains("decord_len")) out.push_back(file);
  }
  return out;
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

std::string temp_path(const std::string& name) {
  return (fs::temp_directory_path() / ("internvl_video_test_" + std::to_string(::getpid()) + "_" + name)).string();
}

std::optional<std::pair<double, double>> parse_bound(const json& bound) {
  if (bound.is_null()) return std::nullopt;
  return std::make_pair(bound.at(0).get<double>(), bound.at(1).get<double>());
}

at::Tensor to_tensor(const std::vector<p::RgbImage>& frames) {  // [K, H, W, 3] uint8
  std::vector<at::Tensor> planes;
  for (const auto& f : frames) {
    planes.push_back(at::from_blob(const_cast<uint8_t*>(f.pixels.data()), {f.height, f.width, 3}, at::kByte).clone());
  }
  return at::stack(planes);
}

// The frame index encoded in the barcode (cells at x = 2 + 5k, y = 2..6; white = bit 7 - k).
int barcode(const p::RgbImage& frame) {
  int value = 0;
  for (int k = 0; k < 8; ++k) {
    const uint8_t* px = frame.row(4) + (4 + 5 * k) * 3;
    if ((px[0] + px[1] + px[2]) / 3 > 127) value |= 1 << (7 - k);
  }
  return value;
}

template <typename E, typename F>
::testing::AssertionResult ThrowsNaming(F&& f, const std::string& name) {
  try {
    f();
  } catch (const E& e) {
    if (std::string(e.what()).find(name) == std::string::npos) {
      return ::testing::AssertionFailure() << "message does not name '" << name << "': " << e.what();
    }
    return ::testing::AssertionSuccess() << e.what();
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "wrong exception type: " << e.what();
  }
  return ::testing::AssertionFailure() << "no exception";
}

#define SKIP_WITHOUT_FFMPEG()                                                          \
  if (!p::video_decoding_available()) GTEST_SKIP() << "built without FFmpeg (INTERNVL_WITH_FFMPEG)"

class VideoFile : public ::testing::TestWithParam<std::string> {};

std::string param_name(const ::testing::TestParamInfo<std::string>& info) {
  std::string name = info.param;
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

}  // namespace

TEST(VideoFixtures, ReferenceListsVideosThatExist) {
  ASSERT_TRUE(have_reference()) << "no " << kReference << "/reference.json under " << fixtures_dir();
  ASSERT_FALSE(good_videos().empty());
  ASSERT_FALSE(broken_videos().empty());
  for (const auto& file : good_videos()) EXPECT_TRUE(fs::exists(video_path(file))) << file;
  for (const auto& file : broken_videos()) EXPECT_TRUE(fs::exists(video_path(file))) << file;
}

// len(vr), get_avg_fps(), the frame size and every frame's start time (decord stores float32).
TEST_P(VideoFile, CountFpsAndTimesEqualDecord) {
  SKIP_WITHOUT_FFMPEG();
  const auto& ref = reference().at("sampling").at(GetParam());
  auto reader = p::VideoReader::open_file(video_path(GetParam()));
  EXPECT_EQ(reader.frame_count(), ref.at("decord_len").get<int64_t>());
  EXPECT_EQ(reader.avg_fps(), ref.at("decord_avg_fps").get<double>());
  const auto& hw = reference().at("decoding").at(GetParam()).at("height_width");
  EXPECT_EQ(reader.height(), hw.at(0).get<int>());
  EXPECT_EQ(reader.width(), hw.at(1).get<int>());
  const auto times = reader.frame_times();
  const auto& ref_times = ref.at("decord_frame_start_times_s");
  ASSERT_EQ(times.size(), ref_times.size());
  for (std::size_t i = 0; i < times.size(); ++i) {
    EXPECT_EQ(static_cast<float>(times[i]), ref_times[i].get<float>()) << "frame " << i;
  }
  // The public probe reports the same.
  const auto info = internvl::probe_video(internvl::Video::from_file(video_path(GetParam())));
  EXPECT_EQ(info.frame_count, reader.frame_count());
  EXPECT_EQ(info.fps, reader.avg_fps());
  EXPECT_EQ(info.width, reader.width());
  EXPECT_EQ(info.height, reader.height());
  EXPECT_EQ(info.codec, video_meta(GetParam()).at("codec").get<std::string>());
}

// Frames at the stored indices equal decord's exactly: from the file in ascending order, and from
// the bytes in descending order (seeks backwards, across keyframes).
TEST_P(VideoFile, FramesEqualDecordExactly) {
  SKIP_WITHOUT_FFMPEG();
  const std::string prefix = "frames." + GetParam();
  ASSERT_TRUE(internvl::testing::has_reference_tensor(kReference, prefix + ".indices"));
  const auto index_tensor = internvl::testing::reference_tensor(kReference, prefix + ".indices").contiguous();
  const auto expected = internvl::testing::reference_tensor(kReference, prefix + ".rgb");
  std::vector<int64_t> indices(index_tensor.data_ptr<int64_t>(), index_tensor.data_ptr<int64_t>() + index_tensor.numel());

  auto reader = p::VideoReader::open_file(video_path(GetParam()));
  const auto frames = reader.frames(indices);
  const auto actual = to_tensor(frames);
  EXPECT_TRUE(internvl::testing::TensorsEqual(actual, expected))
      << "max |diff| " << (actual.to(at::kInt) - expected.to(at::kInt)).abs().max().item<int>();
  for (std::size_t k = 0; k < frames.size(); ++k) EXPECT_EQ(barcode(frames[k]), indices[k] % 256) << "frame " << indices[k];

  const auto bytes = read_bytes(video_path(GetParam()));
  auto from_bytes = p::VideoReader::open_bytes(bytes.data(), bytes.size(), GetParam());
  std::vector<int64_t> reversed(indices.rbegin(), indices.rend());
  const auto actual_reversed = to_tensor(from_bytes.frames(reversed));
  EXPECT_TRUE(internvl::testing::TensorsEqual(actual_reversed.flip(0), expected));
}

// Every frame decodes to the frame its barcode names, sequentially and one at a time in a
// shuffled order (seeking to each).
TEST_P(VideoFile, EveryFrameIsTheOneAskedFor) {
  SKIP_WITHOUT_FFMPEG();
  auto reader = p::VideoReader::open_file(video_path(GetParam()));
  std::vector<int64_t> all(reader.frame_count());
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int64_t>(i);
  const auto frames = reader.frames(all);
  for (std::size_t i = 0; i < frames.size(); ++i) EXPECT_EQ(barcode(frames[i]), static_cast<int>(i % 256));
  std::vector<int64_t> shuffled = all;
  std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937(7));
  for (const int64_t i : shuffled) {
    const auto frame = reader.frame(i);
    EXPECT_EQ(frame.pixels, frames[i].pixels) << "frame " << i << " differs when decoded alone";
  }
}

// get_index for every reference case: intermediates, indices, and what load_video does with them
// (an out-of-range index is InvalidArgument naming the video and the bound).
TEST_P(VideoFile, GetIndexEqualsEveryReferenceCase) {
  const auto& ref = reference().at("sampling").at(GetParam());
  const double fps = ref.at("decord_avg_fps").get<double>();
  const int64_t frame_count = ref.at("decord_len").get<int64_t>();
  const int64_t max_frame = ref.at("max_frame").get<int64_t>();
  ASSERT_FALSE(ref.at("get_index").empty());
  for (const auto& c : ref.at("get_index")) {
    const auto bound = parse_bound(c.at("bound"));
    const int n = c.at("num_segments").get<int>();
    SCOPED_TRACE("num_segments " + std::to_string(n) + " bound " + c.at("bound").dump());
    const auto got = p::get_index(bound, fps, max_frame, 0, n);
    EXPECT_EQ(got.start_idx, c.at("start_idx").get<int64_t>());
    EXPECT_EQ(got.end_idx, c.at("end_idx").get<int64_t>());
    EXPECT_EQ(got.seg_size, c.at("seg_size").get<double>());
    EXPECT_EQ(got.indices, c.at("indices").get<std::vector<int64_t>>());
    if (c.at("load_video_outcome") == "ok") {
      EXPECT_EQ(p::load_video_indices(GetParam(), frame_count, fps, bound, n), got.indices);
    } else {
      EXPECT_FALSE(c.at("all_in_range").get<bool>());
      EXPECT_TRUE(ThrowsNaming<InvalidArgument>([&] { p::load_video_indices(GetParam(), frame_count, fps, bound, n); },
                                                GetParam()));
      EXPECT_TRUE(ThrowsNaming<InvalidArgument>([&] { p::load_video_indices(GetParam(), frame_count, fps, bound, n); },
                                                "bound"));
    }
  }
}

// test_msrvtt's ids per N, and its assertion as InvalidArgument with the same reason.
TEST_P(VideoFile, MsrvttIdsEqualEveryReferenceCase) {
  const auto& ref = reference().at("sampling").at(GetParam());
  const int64_t frame_count = ref.at("decord_len").get<int64_t>();
  ASSERT_FALSE(ref.at("msrvtt").empty());
  for (const auto& c : ref.at("msrvtt")) {
    const int n = c.at("num_frames").get<int>();
    SCOPED_TRACE("N = " + std::to_string(n));
    if (c.at("assert_passes").get<bool>()) {
      EXPECT_EQ(p::msrvtt_frame_ids(frame_count, n, GetParam()), c.at("ids").get<std::vector<int64_t>>());
    } else {
      const std::string reason = c.at("failure").get<std::string>();
      EXPECT_TRUE(ThrowsNaming<InvalidArgument>([&] { p::msrvtt_frame_ids(frame_count, n, GetParam()); }, reason));
      EXPECT_TRUE(ThrowsNaming<InvalidArgument>([&] { p::msrvtt_frame_ids(frame_count, n, GetParam()); }, GetParam()));
      EXPECT_TRUE(ThrowsNaming<InvalidArgument>([&] { p::msrvtt_frame_ids(frame_count, n, GetParam()); },
                                                "interval ceil(T/N) = " + c.at("interval").dump()));
    }
  }
}

// Index out of range, frame-size and frame-count limits, and truncations of the file at many
// lengths: typed errors (or a clean success), never a crash or a hang.
TEST_P(VideoFile, BadRequestsAndTruncationsGiveTypedErrors) {
  SKIP_WITHOUT_FFMPEG();
  const std::string path = video_path(GetParam());
  auto reader = p::VideoReader::open_file(path);
  const int64_t count = reader.frame_count();
  EXPECT_TRUE(ThrowsNaming<InvalidArgument>([&] { reader.frame(count); }, GetParam()));
  EXPECT_TRUE(ThrowsNaming<InvalidArgument>([&] { reader.frame(-1); }, GetParam()));
  EXPECT_TRUE(ThrowsNaming<InvalidArgument>([&] { reader.frames({0, count + 5}); }, "out of range"));

  p::VideoLimits small;
  small.max_pixels = int64_t{reader.width()} * reader.height() - 1;
  EXPECT_TRUE(ThrowsNaming<ImageError>([&] { p::VideoReader::open_file(path, small); }, "too large"));
  p::VideoLimits few;
  few.max_frames = count - 1;
  EXPECT_TRUE(ThrowsNaming<ImageError>([&] { p::VideoReader::open_file(path, few); }, "frame-count limit"));
  few.max_frames = count;
  EXPECT_EQ(p::VideoReader::open_file(path, few).frame_count(), count);

  const auto bytes = read_bytes(path);
  for (const double fraction : {0.0001, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99}) {
    const std::size_t size = std::max<std::size_t>(1, static_cast<std::size_t>(bytes.size() * fraction));
    SCOPED_TRACE("first " + std::to_string(size) + " of " + std::to_string(bytes.size()) + " bytes");
    try {
      auto cut = p::VideoReader::open_bytes(bytes.data(), size, "cut.bin");
      ASSERT_GE(cut.frame_count(), 1);
      for (int64_t i = 0; i < cut.frame_count(); ++i) {
        try {
          const auto f = cut.frame(i);
          EXPECT_EQ(f.pixels.size(), static_cast<std::size_t>(f.width) * f.height * 3);
        } catch (const ImageError& e) {
          EXPECT_NE(std::string(e.what()).find("cut.bin"), std::string::npos) << e.what();
        }
      }
    } catch (const ImageError& e) {
      EXPECT_NE(std::string(e.what()).find("cut.bin"), std::string::npos) << e.what();
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, VideoFile, ::testing::ValuesIn(good_videos()), param_name);

TEST(VideoBadInput, BrokenFixturesAreImageErrors) {
  SKIP_WITHOUT_FFMPEG();
  for (const auto& file : broken_videos()) {
    EXPECT_TRUE(ThrowsNaming<ImageError>([&] { p::VideoReader::open_file(video_path(file)); }, file));
    const auto bytes = read_bytes(video_path(file));
    EXPECT_TRUE(ThrowsNaming<ImageError>([&] { p::VideoReader::open_bytes(bytes.data(), bytes.size(), file); }, file));
    EXPECT_TRUE(ThrowsNaming<ImageError>([&] { internvl::probe_video(internvl::Video::from_file(video_path(file))); },
                                         file));
  }
}

TEST(VideoBadInput, MissingEmptyAndNonVideoFiles) {
  SKIP_WITHOUT_FFMPEG();
  const std::string missing = temp_path("missing.mp4");
  EXPECT_TRUE(ThrowsNaming<ImageError>([&] { p::VideoReader::open_file(missing); }, missing));
  const std::string empty = temp_path("empty.mp4");
  write_bytes(empty, {});
  EXPECT_TRUE(ThrowsNaming<ImageError>([&] { p::VideoReader::open_file(empty); }, "empty"));
  EXPECT_TRUE(ThrowsNaming<ImageError>([&] { p::VideoReader::open_bytes(nullptr, 0, "nothing"); }, "nothing"));
  const std::string text = temp_path("notes.mp4");
  const std::string words = "not a video at all, just some words\n";
  write_bytes(text, std::vector<uint8_t>(words.begin(), words.end()));
  EXPECT_TRUE(ThrowsNaming<ImageError>([&] { p::VideoReader::open_file(text); }, text));
  EXPECT_TRUE(ThrowsNaming<ImageError>([&] { p::VideoReader::open_file(videos_dir()); }, "directory"));
  // The fixtures' JSON and a still image are not videos either.
  EXPECT_TRUE(ThrowsNaming<ImageError>([&] { p::VideoReader::open_file(video_path("videos.json")); }, "videos.json"));
  const std::string image = (fs::path(fixtures_dir()) / "images" / "image1.jpg").string();
  EXPECT_TRUE(ThrowsNaming<ImageError>([&] { p::VideoReader::open_file(image); }, "still image"));
  std::mt19937 rng(1);
  std::vector<uint8_t> noise(4096);
  for (auto& b : noise) b = static_cast<uint8_t>(rng());
  EXPECT_TRUE(ThrowsNaming<ImageError>([&] { p::VideoReader::open_bytes(noise.data(), noise.size(), "noise"); },
                                       "noise"));
  std::remove(empty.c_str());
  std::remove(text.c_str());
}

// A WebM cut before the first block of its first Cluster keeps a valid header and track but has
// no frames.
TEST(VideoBadInput, ZeroFramesIsAnImageError) {
  SKIP_WITHOUT_FFMPEG();
  int tested = 0;
  for (const auto& file : good_videos()) {
    if (fs::path(file).extension() != ".webm") continue;
    const auto bytes = read_bytes(video_path(file));
    // The first Cluster element; the SeekHead names the same ID inside a SeekID (53 AB 84 ...).
    const uint8_t cluster_id[] = {0x1F, 0x43, 0xB6, 0x75};
    auto it = bytes.begin();
    while (true) {
      it = std::search(it, bytes.end(), std::begin(cluster_id), std::end(cluster_id));
      ASSERT_NE(it, bytes.end()) << file;
      if (it - bytes.begin() < 3 || !(it[-3] == 0x53 && it[-2] == 0xAB && it[-1] == 0x84)) break;
      ++it;
    }
    // Keep the Cluster's ID, size and Timestamp child (the demuxer needs a Cluster to open), cut
    // before its first block.
    auto vint_length = [](uint8_t first) {
      int n = 1;
      while (n <= 8 && !(first & (0x80 >> (n - 1)))) ++n;
      return n;
    };
    std::size_t size = static_cast<std::size_t>(it - bytes.begin()) + 4;
    size += vint_length(bytes.at(size));
    ASSERT_EQ(bytes.at(size), 0xE7) << file << ": expected the Cluster's Timestamp element";
    const int ts_size_length = vint_length(bytes.at(size + 1));
    const std::size_t ts_payload = bytes.at(size + 1) & (0xFF >> ts_size_length);  // <= 8 bytes: one-byte size
    size += 1 + ts_size_length + ts_payload;
    EXPECT_TRUE(ThrowsNaming<ImageError>([&] { p::VideoReader::open_bytes(bytes.data(), size, "header-only.webm"); },
                                         "no video frames"));
    ++tested;
  }
  if (tested == 0) GTEST_SKIP() << "no WebM fixture";
}

TEST(VideoSampling, ArgumentChecks) {
  EXPECT_THROW(p::get_index(std::nullopt, 25.0, 49, 0, 0), InvalidArgument);
  EXPECT_THROW(p::get_index(std::nullopt, -1.0, 49, 0, 8), InvalidArgument);
  EXPECT_THROW(p::get_index(std::make_pair(0.0, 1e300), 25.0, 49, 0, 8), InvalidArgument);
  EXPECT_TRUE(ThrowsNaming<InvalidArgument>([] { p::msrvtt_frame_ids(0, 8, "v.mp4"); }, "v.mp4"));
  EXPECT_TRUE(ThrowsNaming<InvalidArgument>([] { p::msrvtt_frame_ids(10, 0, "v.mp4"); }, "v.mp4"));
  EXPECT_TRUE(ThrowsNaming<InvalidArgument>([] { p::load_video_indices("v.mp4", 0, 25.0, std::nullopt, 8); }, "v.mp4"));
}

TEST(VideoApi, VideoValueType) {
  const auto file = internvl::Video::from_file("a.mp4");
  EXPECT_EQ(file.kind(), internvl::Video::Kind::kFile);
  EXPECT_EQ(file.name(), "a.mp4");
  const auto bytes = internvl::Video::from_bytes({1, 2, 3}, "clip");
  EXPECT_EQ(bytes.kind(), internvl::Video::Kind::kBytes);
  EXPECT_EQ(bytes.data().size(), 3u);
  EXPECT_THROW(internvl::Video::from_file(""), InvalidArgument);
  EXPECT_EQ(internvl::video_supported(), p::video_decoding_available());
  if (!internvl::video_supported()) {
    EXPECT_THROW(internvl::probe_video(file), internvl::UnsupportedError);
  }
}

TEST(VideoApi, ProbeFromBytesEqualsProbeFromFile) {
  SKIP_WITHOUT_FFMPEG();
  for (const auto& file : good_videos()) {
    const auto a = internvl::probe_video(internvl::Video::from_file(video_path(file)));
    const auto b = internvl::probe_video(internvl::Video::from_bytes(read_bytes(video_path(file)), file));
    EXPECT_EQ(a.frame_count, b.frame_count) << file;
    EXPECT_EQ(a.fps, b.fps) << file;
    EXPECT_EQ(b.name, file);
    EXPECT_FALSE(a.codec.empty());
  }
}
