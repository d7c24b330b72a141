// Video decoding to 8-bit RGB frames as the official code's decoder (decord 0.6.0) returns them,
// and the official frame sampling (the chat README's get_index, test_msrvtt's ids).
//
// Decoding uses FFmpeg (libavformat/libavcodec/libswscale) when the library is built with it
// (INTERNVL_WITH_FFMPEG); otherwise opening a video throws UnsupportedError.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "preprocess/image.h"

namespace internvl::preprocess {

// Frame-count bound (a 1M-frame index is ~9 hours at 30 fps and ~40 MB of timestamps); like the
// image pixel guard it stops a hostile container from making us index forever.
constexpr int64_t kDefaultMaxVideoFrames = int64_t{1} << 20;

struct VideoLimits {
  int64_t max_pixels = kDefaultMaxImagePixels;  // per frame, as LoadOptions.max_image_pixels; <= 0: no limit
  int64_t max_frames = kDefaultMaxVideoFrames;  // frames in the stream; <= 0: no limit
  int threads = 1;                              // decoder threads (0 = FFmpeg's choice)
};

// True when this build decodes video (FFmpeg found at configure time).
bool video_decoding_available();

// An opened video stream: the first "best" video stream of the container, indexed at open (every
// packet's timestamp is read, nothing decoded), as decord's VideoReader does.
class VideoReader {
 public:
  // Throw ImageError naming the file on a missing, empty, unreadable, truncated or non-video
  // input, and when the frame size or frame count exceeds `limits`; UnsupportedError without
  // FFmpeg. open_bytes does not copy: `data` must outlive the reader.
  static VideoReader open_file(const std::string& path, const VideoLimits& limits = {});
  static VideoReader open_bytes(const uint8_t* data, std::size_t size, const std::string& name = "<memory>",
                                const VideoLimits& limits = {});

  VideoReader(VideoReader&&) noexcept;
  VideoReader& operator=(VideoReader&&) noexcept;
  ~VideoReader();

  const std::string& name() const;
  // decord's len(vr): the number of video packets in the container.
  int64_t frame_count() const;
  // decord's get_avg_fps(): the stream's avg_frame_rate as a double (0 when the container has none).
  double avg_fps() const;
  int width() const;   // output frame size: the stream's coded size (decord scales to it)
  int height() const;
  std::string codec() const;  // FFmpeg's codec name, e.g. "h264"
  // Start time of every frame in seconds, presentation order (decord's get_frame_timestamp()[:, 0]).
  std::vector<double> frame_times() const;

  // Frames at `indices` (presentation order, 0-based; any order, repeats allowed), returned in the
  // order asked. InvalidArgument naming the video for an index outside [0, frame_count()).
  std::vector<RgbImage> frames(const std::vector<int64_t>& indices);
  RgbImage frame(int64_t index);

 private:
  struct Impl;
  explicit VideoReader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The chat README's get_index(bound, fps, max_frame, first_idx, num_segments), with its
// intermediate values. Reproduces Python exactly: round() and np.round() both half to even,
// double arithmetic in the official order, int() truncating toward zero. Indices are neither
// clamped nor de-duplicated (a bound outside the video gives negative or >= max_frame + 1 ones).
struct FrameIndices {
  int64_t start_idx = 0;
  int64_t end_idx = 0;
  double seg_size = 0;
  std::vector<int64_t> indices;
};
// InvalidArgument for num_segments < 1, a non-finite or negative fps, or a bound whose time x fps
// does not fit an int64.
FrameIndices get_index(std::optional<std::pair<double, double>> bound, double fps, int64_t max_frame,
                       int64_t first_idx = 0, int num_segments = 32);

// What load_video does with a video of `frame_count` frames: get_index with max_frame =
// frame_count - 1, then every index must lie inside the video. decord raises IndexError for an
// index >= frame_count and silently wraps a negative one to the end of the video; both mean the
// bound lies outside the video, so both are InvalidArgument here, naming `name` and the bound.
std::vector<int64_t> load_video_indices(const std::string& name, int64_t frame_count, double fps,
                                        std::optional<std::pair<double, double>> bound, int num_segments);

// video_retrieval/test_msrvtt.py: interval = ceil(T / N); ids = arange(0, T, interval) +
// interval // 2; then its `assert len(ids) == N and ids[-1] < T`, mirrored as InvalidArgument
// naming `name` (and for T < 1 or N < 1).
std::vector<int64_t> msrvtt_frame_ids(int64_t frame_count, int num_frames, const std::string& name = "<video>");

}  // namespace internvl::preprocess
