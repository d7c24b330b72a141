// The official frame sampling: get_index (internvl_chat/README.md load_video) and the ids of
// video_retrieval/test_msrvtt.py. Both are pure arithmetic, independent of FFmpeg.
#include <algorithm>
#include <cmath>
#include <sstream>

#include "common/check.h"
#include "preprocess/video.h"

namespace internvl::preprocess {
namespace {

// Python's round(float) and numpy's np.round both round half to even; nearbyint does too in the
// default rounding mode only; this does not depend on the caller's floating-point environment.
double round_half_even(double x) {
  const double floor_x = std::floor(x);
  const double diff = x - floor_x;
  if (diff < 0.5) return floor_x;
  if (diff > 0.5) return floor_x + 1.0;
  return std::fmod(floor_x, 2.0) == 0.0 ? floor_x : floor_x + 1.0;
}

// Beyond 2^62 an int64 conversion (or the later arithmetic) could overflow.
constexpr double kMaxIndexMagnitude = 4.611686018427387904e18;

int64_t to_index(double value, const char* what) {
  INTERNVL_CHECK(std::isfinite(value) && std::fabs(value) < kMaxIndexMagnitude, InvalidArgument, "get_index: ", what,
                 " = ", value, " is not a usable frame index");
  return static_cast<int64_t>(value);  // int(): truncation toward zero
}

std::string bound_text(const std::optional<std::pair<double, double>>& bound) {
  if (!bound) return "none";
  std::ostringstream out;
  out << "(" << bound->first << ", " << bound->second << ") s";
  return out.str();
}

}  // namespace

FrameIndices get_index(std::optional<std::pair<double, double>> bound, double fps, int64_t max_frame,
                       int64_t first_idx, int num_segments) {
  INTERNVL_CHECK(num_segments >= 1, InvalidArgument, "get_index: num_segments = ", num_segments,
                 " must be at least 1");
  INTERNVL_CHECK(std::isfinite(fps) && fps >= 0, InvalidArgument, "get_index: fps = ", fps,
                 " must be finite and non-negative");
  // Official: `if bound:` -- any given pair counts, (0, 0) included.
  const double start = bound ? bound->first : -100000.0;
  const double end = bound ? bound->second : 100000.0;
  FrameIndices out;
  out.start_idx = std::max(first_idx, to_index(round_half_even(start * fps), "round(start * fps)"));
  out.end_idx = std::min(to_index(round_half_even(end * fps), "round(end * fps)"), max_frame);
  out.seg_size = static_cast<double>(out.end_idx - out.start_idx) / num_segments;
  out.indices.reserve(num_segments);
  for (int i = 0; i < num_segments; ++i) {
    // int(start_idx + (seg_size / 2) + np.round(seg_size * idx)), left to right in double.
    const double value =
        static_cast<double>(out.start_idx) + out.seg_size / 2 + round_half_even(out.seg_size * i);
    out.indices.push_back(to_index(value, "index"));
  }
  return out;
}

std::vector<int64_t> load_video_indices(const std::string& name, int64_t frame_count, double fps,
                                        std::optional<std::pair<double, double>> bound, int num_segments) {
  INTERNVL_CHECK(frame_count >= 1, InvalidArgument, name, ": the video has no frames");
  if (bound) {
    INTERNVL_CHECK(std::isfinite(bound->first) && std::isfinite(bound->second), InvalidArgument, name,
                   ": bound ", bound_text(bound), " is not finite");
  }
  const FrameIndices sampled = get_index(bound, fps, frame_count - 1, 0, num_segments);
  for (const int64_t index : sampled.indices) {
    INTERNVL_CHECK(index >= 0 && index < frame_count, InvalidArgument, name, ": bound ", bound_text(bound),
                   " lies outside the video (", frame_count, " frames at ", fps, " fps = ",
                   static_cast<double>(frame_count) / (fps > 0 ? fps : 1.0), " s): get_index gives frame ", index,
                   " with ", num_segments, " segments");
  }
  return sampled.indices;
}

std::vector<int64_t> msrvtt_frame_ids(int64_t frame_count, int num_frames, const std::string& name) {
  INTERNVL_CHECK(num_frames >= 1, InvalidArgument, name, ": num_frames = ", num_frames, " must be at least 1");
  INTERNVL_CHECK(frame_count >= 1, InvalidArgument, name, ": the video has no frames");
  const int64_t interval = (frame_count + num_frames - 1) / num_frames;  // ceil(T / N) for positive ints
  std::vector<int64_t> ids;
  for (int64_t t = 0; t < frame_count; t += interval) ids.push_back(t + interval / 2);
  // test_msrvtt.py: assert len(ids) == num_frames and ids[-1] < len(vr)
  INTERNVL_CHECK(static_cast<int64_t>(ids.size()) == num_frames, InvalidArgument, name, ": test_msrvtt sampling of ",
                 num_frames, " frames from ", frame_count, " gives len(ids) = ", ids.size(), " != ", num_frames,
                 " (interval ceil(T/N) = ", interval, "); choose another number of frames");
  INTERNVL_CHECK(ids.back() < frame_count, InvalidArgument, name, ": test_msrvtt sampling of ", num_frames,
                 " frames from ", frame_count, " gives ids[-1] = ", ids.back(), " >= T = ", frame_count,
                 " (interval ceil(T/N) = ", interval, "); choose another number of frames");
  return ids;
}

}  // namespace internvl::preprocess
