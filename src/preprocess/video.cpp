// Video decoding with FFmpeg, reproducing decord 0.6.0's VideoReader (the official code's decoder):
//   * stream: av_find_best_stream(VIDEO);
//   * frame count: the number of the stream's packets, read once at open (decord's
//     IndexKeyframes; len(vr) is then frame_ts_.size()); frame i is the packet with the i-th
//     smallest timestamp, i.e. presentation order;
//   * fps: avg_frame_rate.num / avg_frame_rate.den as a double;
//   * pixels: swscale SWS_BILINEAR to rgb24 at the stream's coded size, with the frame's YCbCr
//     matrix and range given to sws_setColorspaceDetails -- what decord's libavfilter `scale=W:H`
//     does (vf_scale: default flags bilinear, in_color_matrix "auto", range from the frame).
// Seeking: to the keyframe at or before the wanted frame, then decode forward, recognising frames by
// their timestamps (so B-frame reordering cannot shift an index); a request that the next
// keyframe does not separate from the current position continues decoding without a seek.
#include "preprocess/video.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <numeric>

#include "common/check.h"
#include "internvl/video.h"

#ifdef INTERNVL_WITH_FFMPEG
extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/dict.h>
#include <libavutil/error.h>
#include <libavutil/imgutils.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
}
#include <mutex>
#endif

namespace internvl::preprocess {

#ifndef INTERNVL_WITH_FFMPEG

bool video_decoding_available() { return false; }

struct VideoReader::Impl {
  std::string name;
};

namespace {
[[noreturn]] void unsupported(const std::string& name) {
  INTERNVL_THROW(UnsupportedError, name,
                 ": video decoding is not in this build (configure with INTERNVL_WITH_FFMPEG=ON after installing "
                 "libavformat-dev libavcodec-dev libswscale-dev libavutil-dev)");
}
}  // namespace

VideoReader VideoReader::open_file(const std::string& path, const VideoLimits&) { unsupported(path); }
VideoReader VideoReader::open_bytes(const uint8_t*, std::size_t, const std::string& name, const VideoLimits&) {
  unsupported(name);
}
const std::string& VideoReader::name() const { return impl_->name; }
int64_t VideoReader::frame_count() const { unsupported(impl_->name); }
double VideoReader::avg_fps() const { unsupported(impl_->name); }
int VideoReader::width() const { unsupported(impl_->name); }
int VideoReader::height() const { unsupported(impl_->name); }
std::string VideoReader::codec() const { unsupported(impl_->name); }
std::vector<double> VideoReader::frame_times() const { unsupported(impl_->name); }
std::vector<RgbImage> VideoReader::frames(const std::vector<int64_t>&) { unsupported(impl_->name); }
RgbImage VideoReader::frame(int64_t) { unsupported(impl_->name); }

#else  // INTERNVL_WITH_FFMPEG

bool video_decoding_available() { return true; }

namespace {

std::string av_error_text(int code) {
  char text[AV_ERROR_MAX_STRING_SIZE] = {0};
  av_strerror(code, text, sizeof(text));
  return text;
}

// FFmpeg logs to stderr by default (e.g. "moov atom not found" for a truncated MP4); every
// failure reaches the caller as an exception instead.
void quiet_ffmpeg_logs() {
  static std::once_flag once;
  std::call_once(once, [] { av_log_set_level(AV_LOG_QUIET); });
}

// Encoded bytes in memory read through a custom AVIOContext.
struct MemorySource {
  const uint8_t* data = nullptr;
  std::size_t size = 0;
  std::size_t pos = 0;
};

int memory_read(void* opaque, uint8_t* buffer, int capacity) {
  auto* source = static_cast<MemorySource*>(opaque);
  if (source->pos >= source->size) return AVERROR_EOF;
  const std::size_t n = std::min<std::size_t>(static_cast<std::size_t>(capacity), source->size - source->pos);
  std::copy_n(source->data + source->pos, n, buffer);
  source->pos += n;
  return static_cast<int>(n);
}

int64_t memory_seek(void* opaque, int64_t offset, int whence) {
  auto* source = static_cast<MemorySource*>(opaque);
  if (whence & AVSEEK_SIZE) return static_cast<int64_t>(source->size);
  int64_t base = 0;
  switch (whence & ~AVSEEK_FORCE) {
    case SEEK_SET: base = 0; break;
    case SEEK_CUR: base = static_cast<int64_t>(source->pos); break;
    case SEEK_END: base = static_cast<int64_t>(source->size); break;
    default: return AVERROR(EINVAL);
  }
  if (offset > std::numeric_limits<int64_t>::max() - base) return AVERROR(EINVAL);
  const int64_t target = base + offset;
  if (target < 0 || target > static_cast<int64_t>(source->size)) return AVERROR(EINVAL);
  source->pos = static_cast<std::size_t>(target);
  return target;
}

bool is_full_range_format(AVPixelFormat format) {
  return format == AV_PIX_FMT_YUVJ420P || format == AV_PIX_FMT_YUVJ422P || format == AV_PIX_FMT_YUVJ444P ||
         format == AV_PIX_FMT_YUVJ440P || format == AV_PIX_FMT_YUVJ411P;
}

// One indexed frame: its packet's timestamps and key flag.
struct IndexedFrame {
  int64_t pts = 0;   // presentation timestamp (the dts when the packet has none)
  int64_t seek_ts = 0;  // what to seek to for a keyframe: its dts (<= pts), else its pts
  bool key = false;
  double start_s = 0;
};

}  // namespace

struct VideoReader::Impl {
  std::string name;
  VideoLimits limits;
  MemorySource memory;
  AVIOContext* avio = nullptr;
  AVFormatContext* format = nullptr;
  AVCodecContext* decoder = nullptr;
  AVPacket* packet = nullptr;
  AVFrame* decoded = nullptr;
  AVFrame* rgb = nullptr;  // FFmpeg-allocated (aligned) output, as libavfilter's buffers are
  SwsContext* sws = nullptr;
  // The input the current sws context was made for.
  int sws_width = 0, sws_height = 0, sws_format = -1, sws_colorspace = -1, sws_range = -1;

  int stream = -1;
  int width = 0;
  int height = 0;
  double fps = 0;
  std::vector<IndexedFrame> frames;  // presentation order

  // Decoder position: the index of the last frame it returned (-1: none since the last seek);
  // `positioned` is false before the first seek and after the decoder was drained.
  bool positioned = false;
  int64_t last_index = -1;

  ~Impl() {
    sws_freeContext(sws);
    av_frame_free(&rgb);
    av_frame_free(&decoded);
    av_packet_free(&packet);
    avcodec_free_context(&decoder);
    avformat_close_input(&format);  // does not free a custom AVIOContext
    if (avio != nullptr) {
      av_freep(&avio->buffer);
      avio_context_free(&avio);
    }
  }

  [[noreturn]] void fail(const std::string& what) const { throw ImageError(name + ": " + what); }

  void open(const std::string* path) {
    quiet_ffmpeg_logs();
    format = avformat_alloc_context();
    if (format == nullptr) fail("out of memory");
    if (path == nullptr) {
      constexpr int kBufferSize = 64 * 1024;
      auto* buffer = static_cast<unsigned char*>(av_malloc(kBufferSize));
      if (buffer == nullptr) fail("out of memory");
      avio = avio_alloc_context(buffer, kBufferSize, 0, &memory, &memory_read, nullptr, &memory_seek);
      if (avio == nullptr) {
        av_free(buffer);
        fail("out of memory");
      }
      format->pb = avio;
    }
    // Only local files: a path is never taken for a URL ("file:" prefix), and a playlist-like
    // container (HLS, concat) cannot make FFmpeg open the network; bytes open nothing else at all.
    AVDictionary* options = nullptr;
    av_dict_set(&options, "protocol_whitelist", path != nullptr ? "file" : "none", 0);
    const std::string url = path != nullptr ? "file:" + *path : std::string();
    int rc = avformat_open_input(&format, path != nullptr ? url.c_str() : nullptr, nullptr, &options);
    av_dict_free(&options);
    if (rc < 0) fail("not a readable video (" + av_error_text(rc) + ")");  // frees `format`
    const std::string demuxer = format->iformat != nullptr ? format->iformat->name : "";
    // A still image opens as a one-frame "video" through the image demuxers; refuse it here.
    if (demuxer == "image2" || (demuxer.size() > 5 && demuxer.compare(demuxer.size() - 5, 5, "_pipe") == 0)) {
      fail("is a still image (" + demuxer + "), not a video");
    }
    rc = avformat_find_stream_info(format, nullptr);
    if (rc < 0) fail("cannot read the stream information (" + av_error_text(rc) + ")");
    const AVCodec* codec = nullptr;
    stream = av_find_best_stream(format, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (stream == AVERROR_DECODER_NOT_FOUND) fail("no decoder for its video stream in this FFmpeg");
    if (stream < 0 || codec == nullptr) fail("has no video stream");
    for (unsigned i = 0; i < format->nb_streams; ++i) {
      if (static_cast<int>(i) != stream) format->streams[i]->discard = AVDISCARD_ALL;
    }
    AVStream* st = format->streams[stream];
    width = st->codecpar->width;
    height = st->codecpar->height;
    if (width <= 0 || height <= 0) fail("video frames have no size (" + std::to_string(width) + "x" +
                                        std::to_string(height) + ")");
    check_frame_size(width, height);
    if (st->avg_frame_rate.den != 0 && st->avg_frame_rate.num != 0) {
      fps = static_cast<double>(st->avg_frame_rate.num) / st->avg_frame_rate.den;
    }

    decoder = avcodec_alloc_context3(codec);
    if (decoder == nullptr) fail("out of memory");
    rc = avcodec_parameters_to_context(decoder, st->codecpar);
    if (rc < 0) fail("bad codec parameters (" + av_error_text(rc) + ")");
    decoder->thread_count = std::max(0, limits.threads);
    rc = avcodec_open2(decoder, codec, nullptr);
    if (rc < 0) fail("cannot open the " + std::string(codec->name) + " decoder (" + av_error_text(rc) + ")");
    packet = av_packet_alloc();
    decoded = av_frame_alloc();
    rgb = av_frame_alloc();
    if (packet == nullptr || decoded == nullptr || rgb == nullptr) fail("out of memory");
    rgb->format = AV_PIX_FMT_RGB24;
    rgb->width = width;
    rgb->height = height;
    rc = av_frame_get_buffer(rgb, 0);
    if (rc < 0) fail("out of memory for a " + std::to_string(width) + "x" + std::to_string(height) + " frame");

    index_frames();
  }

  void check_frame_size(int64_t w, int64_t h) const {
    const int64_t limit = limits.max_pixels > 0 ? limits.max_pixels : std::numeric_limits<int32_t>::max();
    if (w * h > limit) {
      fail("video frames too large (" + std::to_string(w) + "x" + std::to_string(h) + " = " + std::to_string(w * h) +
           " pixels, at most " + std::to_string(limit) + " allowed; see LoadOptions.max_image_pixels)");
    }
  }

  // Reads every packet of the stream once (no decoding): timestamps, key flags, the count.
  void index_frames() {
    AVStream* st = format->streams[stream];
    const int64_t max_frames = limits.max_frames > 0 ? limits.max_frames : std::numeric_limits<int64_t>::max();
    const int64_t start = st->start_time != AV_NOPTS_VALUE ? st->start_time : 0;
    const double seconds_per_tick = st->time_base.den != 0 ? av_q2d(st->time_base) : 0.0;
    while (true) {
      const int rc = av_read_frame(format, packet);
      if (rc == AVERROR_EOF) break;
      if (rc < 0) fail("read error after " + std::to_string(frames.size()) + " frames (" + av_error_text(rc) + ")");
      if (packet->stream_index == stream) {
        if (static_cast<int64_t>(frames.size()) >= max_frames) {
          av_packet_unref(packet);
          fail("more than " + std::to_string(max_frames) + " frames (the frame-count limit)");
        }
        IndexedFrame f;
        f.pts = packet->pts != AV_NOPTS_VALUE ? packet->pts : packet->dts;
        f.seek_ts = packet->dts != AV_NOPTS_VALUE ? packet->dts : f.pts;
        f.key = (packet->flags & AV_PKT_FLAG_KEY) != 0;
        f.start_s = static_cast<double>(f.pts - start) * seconds_per_tick;
        frames.push_back(f);
      }
      av_packet_unref(packet);
    }
    if (frames.empty()) fail("has no video frames");
    std::stable_sort(frames.begin(), frames.end(),
                     [](const IndexedFrame& a, const IndexedFrame& b) { return a.pts < b.pts; });
    // Decoding from the start must always be possible: treat the first frame as a seek point.
    frames.front().key = true;
    positioned = false;
  }

  // The frame index a decoded frame's timestamp belongs to, or -1.
  int64_t index_of(int64_t pts) const {
    const auto it = std::lower_bound(frames.begin(), frames.end(), pts,
                                     [](const IndexedFrame& f, int64_t value) { return f.pts < value; });
    if (it == frames.end() || it->pts != pts) return -1;
    return it - frames.begin();
  }

  int64_t keyframe_at_or_before(int64_t index) const {
    for (int64_t k = index; k > 0; --k) {
      if (frames[k].key) return k;
    }
    return 0;
  }

  int64_t keyframe_before(int64_t index) const { return index <= 0 ? 0 : keyframe_at_or_before(index - 1); }

  void seek_to_keyframe(int64_t key) {
    int rc = -1;
    if (key == 0) {
      // The very start: byte 0 works for every demuxer, even without an index.
      rc = avformat_seek_file(format, stream, std::numeric_limits<int64_t>::min(), frames[0].seek_ts,
                              frames[0].seek_ts, 0);
      if (rc < 0) rc = av_seek_frame(format, stream, 0, AVSEEK_FLAG_BYTE | AVSEEK_FLAG_BACKWARD);
    } else {
      rc = av_seek_frame(format, stream, frames[key].seek_ts, AVSEEK_FLAG_BACKWARD);
    }
    if (rc < 0) fail("cannot seek to frame " + std::to_string(key) + " (" + av_error_text(rc) + ")");
    avcodec_flush_buffers(decoder);
    positioned = true;
    last_index = -1;
  }

  // Decodes forward until frame `target` comes out; converts it. False when a later frame comes
  // first (the seek landed after the target) or the stream ends without it.
  bool decode_until(int64_t target, RgbImage& out) {
    bool draining = false;
    while (true) {
      int rc = avcodec_receive_frame(decoder, decoded);
      if (rc == 0) {
        const int64_t ts = decoded->best_effort_timestamp != AV_NOPTS_VALUE ? decoded->best_effort_timestamp
                                                                          : decoded->pts;
        const int64_t index = index_of(ts);
        if (index < 0) {  // a timestamp the index does not know: not addressable, skip it
          av_frame_unref(decoded);
          continue;
        }
        last_index = index;
        if (index == target) {
          convert(out);
          av_frame_unref(decoded);
          return true;
        }
        av_frame_unref(decoded);
        // Past the target: the seek landed after it, or its packet did not decode.
        if (index > target) return false;
        continue;
      }
      if (rc == AVERROR_EOF) {
        positioned = false;  // drained: the next request seeks
        return false;
      }
      if (rc != AVERROR(EAGAIN)) fail("decoding error (" + av_error_text(rc) + ")");
      if (draining) {
        positioned = false;
        return false;
      }
      rc = av_read_frame(format, packet);
      if (rc < 0) {  // end of the file (or a read error): drain what the decoder holds
        avcodec_send_packet(decoder, nullptr);
        draining = true;
        continue;
      }
      if (packet->stream_index == stream) {
        // A corrupt packet is skipped (its frame then fails to appear, reported by the caller).
        avcodec_send_packet(decoder, packet);
      }
      av_packet_unref(packet);
    }
  }

  RgbImage decode(int64_t target) {
    RgbImage out;
    const int64_t key = keyframe_at_or_before(target);
    // Continue without seeking when the decoder stands between the keyframe and the target.
    if (positioned && last_index >= key && last_index < target) {
      if (decode_until(target, out)) return out;
    }
    // Seek to the keyframe; if the demuxer lands too late (or the GOP is open), try the keyframe
    // before it, then the start (bounded: a frame that never decodes costs three passes, not one
    // per keyframe).
    const int64_t attempts[] = {key, keyframe_before(key), 0};
    for (std::size_t a = 0; a < 3; ++a) {
      if (a > 0 && attempts[a] == attempts[a - 1]) continue;
      seek_to_keyframe(attempts[a]);
      if (decode_until(target, out)) return out;
    }
    fail("frame " + std::to_string(target) + " of " + std::to_string(frames.size()) + " could not be decoded");
  }

  void ensure_scaler() {
    const int format_in = decoded->format;
    const int colorspace = decoded->colorspace;
    const int range = decoded->color_range;
    if (sws != nullptr && sws_width == decoded->width && sws_height == decoded->height && sws_format == format_in &&
        sws_colorspace == colorspace && sws_range == range) {
      return;
    }
    sws_freeContext(sws);
    sws = nullptr;
    const auto pixel_format = static_cast<AVPixelFormat>(format_in);
    if (decoded->width <= 0 || decoded->height <= 0 || !sws_isSupportedInput(pixel_format)) {
      const char* fmt_name = av_get_pix_fmt_name(pixel_format);
      fail(std::string("cannot convert decoded frames (") + (fmt_name != nullptr ? fmt_name : "unknown format") +
           ", " + std::to_string(decoded->width) + "x" + std::to_string(decoded->height) + ") to RGB");
    }
    check_frame_size(decoded->width, decoded->height);
    // Scaled to the stream's size like decord's `scale=W:H` (a mid-stream size change is resized).
    sws = sws_getContext(decoded->width, decoded->height, pixel_format, width, height, AV_PIX_FMT_RGB24,
                         SWS_BILINEAR, nullptr, nullptr, nullptr);
    if (sws == nullptr) fail("cannot create the RGB converter");
    // vf_scale's colour handling: matrix from the frame's tag (unspecified -> BT.601 via
    // sws_getCoefficients), the output table the same, input range from the frame's tag when set
    // (else swscale's own: full for the yuvj formats).
    int* inv_table = nullptr;
    int* table = nullptr;
    int src_full = 0, dst_full = 0, brightness = 0, contrast = 0, saturation = 0;
    sws_getColorspaceDetails(sws, &inv_table, &src_full, &table, &dst_full, &brightness, &contrast, &saturation);
    const int* coefficients = sws_getCoefficients(colorspace);
    if (range == AVCOL_RANGE_JPEG) {
      src_full = 1;
    } else if (range == AVCOL_RANGE_MPEG) {
      src_full = 0;
    } else {
      src_full = is_full_range_format(pixel_format) ? 1 : src_full;
    }
    sws_setColorspaceDetails(sws, coefficients, src_full, coefficients, dst_full, brightness, contrast, saturation);
    sws_width = decoded->width;
    sws_height = decoded->height;
    sws_format = format_in;
    sws_colorspace = colorspace;
    sws_range = range;
  }

  void convert(RgbImage& out) {
    ensure_scaler();
    const int rows = sws_scale(sws, decoded->data, decoded->linesize, 0, decoded->height, rgb->data, rgb->linesize);
    if (rows != height) fail("RGB conversion failed");
    out.width = width;
    out.height = height;
    out.pixels.resize(static_cast<std::size_t>(width) * height * 3);
    const std::size_t row_bytes = static_cast<std::size_t>(width) * 3;
    for (int y = 0; y < height; ++y) {
      std::copy_n(rgb->data[0] + static_cast<std::ptrdiff_t>(y) * rgb->linesize[0], row_bytes,
                  out.pixels.data() + y * row_bytes);
    }
  }
};

VideoReader VideoReader::open_file(const std::string& path, const VideoLimits& limits) {
  std::error_code ec;
  INTERNVL_CHECK(!path.empty(), InvalidArgument, "video path is empty");
  INTERNVL_CHECK(std::filesystem::exists(path, ec), ImageError, path, ": no such file");
  INTERNVL_CHECK(!std::filesystem::is_directory(path, ec), ImageError, path, ": is a directory, not a video");
  const auto size = std::filesystem::file_size(path, ec);
  INTERNVL_CHECK(!ec, ImageError, path, ": cannot read (", ec.message(), ")");
  INTERNVL_CHECK(size > 0, ImageError, path, ": empty file");
  auto impl = std::make_unique<Impl>();
  impl->name = path;
  impl->limits = limits;
  impl->open(&path);
  return VideoReader(std::move(impl));
}

VideoReader VideoReader::open_bytes(const uint8_t* data, std::size_t size, const std::string& name,
                                    const VideoLimits& limits) {
  INTERNVL_CHECK(data != nullptr || size == 0, InvalidArgument, name, ": null video data");
  INTERNVL_CHECK(size > 0, ImageError, name, ": empty video data");
  auto impl = std::make_unique<Impl>();
  impl->name = name;
  impl->limits = limits;
  impl->memory.data = data;
  impl->memory.size = size;
  impl->open(nullptr);
  return VideoReader(std::move(impl));
}

const std::string& VideoReader::name() const { return impl_->name; }
int64_t VideoReader::frame_count() const { return static_cast<int64_t>(impl_->frames.size()); }
double VideoReader::avg_fps() const { return impl_->fps; }
int VideoReader::width() const { return impl_->width; }
int VideoReader::height() const { return impl_->height; }
std::string VideoReader::codec() const { return avcodec_get_name(impl_->decoder->codec_id); }

std::vector<double> VideoReader::frame_times() const {
  std::vector<double> times;
  times.reserve(impl_->frames.size());
  for (const auto& f : impl_->frames) times.push_back(f.start_s);
  return times;
}

std::vector<RgbImage> VideoReader::frames(const std::vector<int64_t>& indices) {
  const int64_t count = frame_count();
  for (const int64_t index : indices) {
    INTERNVL_CHECK(index >= 0 && index < count, InvalidArgument, impl_->name, ": frame index ", index,
                   " out of range (the video has ", count, " frames)");
  }
  // Decode in ascending order (one forward pass per GOP), then hand back in the order asked.
  std::vector<std::size_t> order(indices.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return indices[a] < indices[b]; });
  std::vector<RgbImage> out(indices.size());
  for (std::size_t k = 0; k < order.size(); ++k) {
    const std::size_t i = order[k];
    if (k > 0 && indices[order[k - 1]] == indices[i]) {
      out[i] = out[order[k - 1]];
    } else {
      out[i] = impl_->decode(indices[i]);
    }
  }
  return out;
}

RgbImage VideoReader::frame(int64_t index) { return std::move(frames({index}).front()); }

#endif  // INTERNVL_WITH_FFMPEG

VideoReader::VideoReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
VideoReader::VideoReader(VideoReader&&) noexcept = default;
VideoReader& VideoReader::operator=(VideoReader&&) noexcept = default;
VideoReader::~VideoReader() = default;

}  // namespace internvl::preprocess

namespace internvl {

Video Video::from_file(std::string path) {
  INTERNVL_CHECK(!path.empty(), InvalidArgument, "Video::from_file: empty path");
  Video video;
  video.kind_ = Kind::kFile;
  video.name_ = std::move(path);
  return video;
}

Video Video::from_bytes(std::vector<uint8_t> bytes, std::string name) {
  Video video;
  video.kind_ = Kind::kBytes;
  video.name_ = std::move(name);
  video.data_ = std::move(bytes);
  return video;
}

VideoInfo probe_video(const Video& video, int64_t max_frame_pixels, int64_t max_frames) {
  preprocess::VideoLimits limits;
  limits.max_pixels = max_frame_pixels;
  limits.max_frames = max_frames;
  auto reader = video.kind() == Video::Kind::kBytes
                    ? preprocess::VideoReader::open_bytes(video.data().data(), video.data().size(), video.name(),
                                                          limits)
                    : preprocess::VideoReader::open_file(video.name(), limits);
  VideoInfo info;
  info.name = video.name();
  info.frame_count = reader.frame_count();
  info.fps = reader.avg_fps();
  info.width = reader.width();
  info.height = reader.height();
  info.codec = reader.codec();
  return info;
}

bool video_supported() { return preprocess::video_decoding_available(); }

}  // namespace internvl
