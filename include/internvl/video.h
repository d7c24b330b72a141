/// @file
/// Video facts without decoding: frame count, frame rate and size, as the official decoder reports them.
#pragma once

#include <cstdint>
#include <string>

#include "internvl/types.h"

namespace internvl {

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
