/// @file
/// Video input: the Video value type, and video facts (frame count, frame rate, size) as the
/// official decoder (decord) reports them. No FFmpeg or LibTorch types.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace internvl {

/// A video to read: a file path or the encoded file's bytes (MP4/H.264, WebM/VP9, AVI/MJPEG and
/// whatever else this build's FFmpeg demuxes), like Image. Frames are decoded as the official
/// code's decoder (decord) returns them.
class Video {
 public:
  /// A file, opened when the video is used.
  static Video from_file(std::string path);
  /// The encoded file in memory; `name` appears in error messages.
  static Video from_bytes(std::vector<uint8_t> bytes, std::string name = "<memory>");

  /// Which constructor made the video.
  enum class Kind { kFile, kBytes };
  Kind kind() const { return kind_; }  ///< which constructor made the video
  const std::string& name() const { return name_; }  ///< the path, or the given name
  const std::vector<uint8_t>& data() const { return data_; }  ///< encoded bytes (kBytes only)

 private:
  Kind kind_ = Kind::kFile;
  std::string name_;
  std::vector<uint8_t> data_;
};

/// What probe_video found.
struct VideoInfo {
  std::string name;         ///< the video's name (the path of a file)
  int64_t frame_count = 0;  ///< decord's len(vr): the video stream's packets, counted at open
  double fps = 0;           ///< decord's get_avg_fps(): the stream's average frame rate (0 when unknown)
  int width = 0;            ///< frame width in pixels
  int height = 0;           ///< frame height in pixels
  std::string codec;        ///< FFmpeg's codec name, e.g. "h264", "vp9", "mjpeg"
};

/// Opens `video` and indexes its video stream (reads every packet's timestamp, decodes nothing).
/// Throws ImageError naming the video when it is missing, empty, truncated or not a video, when a
/// frame has more than `max_frame_pixels` pixels (the image limit, LoadOptions::max_image_pixels;
/// <= 0 lifts it) or the stream more than `max_frames` frames (<= 0 lifts it); UnsupportedError
/// when the library was built without FFmpeg (see video_supported()).
VideoInfo probe_video(const Video& video, int64_t max_frame_pixels = int64_t{2} * 89478485,
                      int64_t max_frames = int64_t{1} << 20);

/// True when this build of the library decodes video (configured with FFmpeg, INTERNVL_WITH_FFMPEG).
bool video_supported();

}  ///< namespace internvl
