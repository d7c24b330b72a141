// Image decoding to 8-bit RGB reproducing Pillow 9.4's `Image.open(f).convert('RGB')`.
//
// Formats: GIF through giflib (Debian's OpenCV 4.6 has no GIF reader), everything else through
// OpenCV's imgcodecs. What Pillow does, and how it is reproduced here:
//   * L (grey)            -> R = G = B = grey
//   * RGBA / LA / P+tRNS  -> alpha dropped, not composited (OpenCV hands us BGRA; we drop A)
//   * P (palette)         -> palette lookup, transparency ignored (libpng expands PNG palettes;
//                            GIF palettes are looked up here)
//   * 16-bit grey (PNG mode "I", TIFF "I;16") -> each value clipped to 0..255, not scaled
//   * 16-bit colour (PNG rawmodes "RGB;16B"/"RGBA;16B", TIFF "RGB;16L"...) -> Pillow keeps the
//     most significant byte of each sample, i.e. v >> 8
//   * EXIF orientation ignored (IMREAD_UNCHANGED never rotates; for JPEG we pass
//     IMREAD_IGNORE_ORIENTATION explicitly)
// JPEG is decoded with IMREAD_COLOR | IMREAD_IGNORE_ORIENTATION (libjpeg-turbo defaults, the same
// library and settings as the fixtures' Pillow; grey JPEGs are replicated by the decoder).
#include "preprocess/image.h"

#include <gif_lib.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "common/check.h"

namespace internvl::preprocess {
namespace {

// OpenCV takes the encoded bytes as a cv::Mat with an int length.
constexpr uintmax_t kMaxEncodedBytes = static_cast<uintmax_t>(std::numeric_limits<int>::max());
// Buffers handed to us as pixels (from_rgb / from_mat) are already allocated; this only keeps
// width * height * 3 inside size_t and int arithmetic (a 16384 x 16384 image).
constexpr int64_t kMaxBufferPixels = int64_t{1} << 28;

void check_pixel_count(int64_t width, int64_t height, const std::string& name, int64_t max_pixels) {
  INTERNVL_CHECK(width > 0 && height > 0, ImageError, name, ": image has no pixels (", width, "x", height, ")");
  // Width and height each fit in 32 bits here (they come from 16/32-bit header fields or ints).
  INTERNVL_CHECK(width <= std::numeric_limits<int>::max() && height <= std::numeric_limits<int>::max(), ImageError,
                 name, ": image too large (", width, "x", height, " pixels)");
  const int64_t limit = max_pixels > 0 ? std::min(max_pixels, kMaxBufferPixels * 4) : kMaxBufferPixels * 4;
  INTERNVL_CHECK(width * height <= limit, ImageError, name, ": image too large (", width, "x", height, " = ",
                 width * height, " pixels, at most ", limit,
                 " allowed; a possible decompression bomb, see LoadOptions.max_image_pixels)");
}

RgbImage allocate(int width, int height) {
  RgbImage out;
  out.width = width;
  out.height = height;
  out.pixels.resize(static_cast<std::size_t>(width) * static_cast<std::size_t>(height) * 3);
  return out;
}

// Pillow's 16-bit grey -> 8-bit: clip.
inline uint8_t clip16(uint16_t v) { return v > 255 ? 255 : static_cast<uint8_t>(v); }
// Pillow's 16-bit colour rawmodes keep the most significant byte.
inline uint8_t msb16(uint16_t v) { return static_cast<uint8_t>(v >> 8); }

// Converts an OpenCV matrix (1 = grey, 3 = BGR, 4 = BGRA; CV_8U or CV_16U) to RGB. Returns false
// when the type is not one of those (the caller chooses the exception type).
bool mat_to_rgb(const cv::Mat& mat, RgbImage& out) {
  const int depth = mat.depth();
  const int channels = mat.channels();
  if (mat.dims != 2 || (depth != CV_8U && depth != CV_16U) || (channels != 1 && channels != 3 && channels != 4)) {
    return false;
  }
  out = allocate(mat.cols, mat.rows);
  for (int y = 0; y < mat.rows; ++y) {
    uint8_t* dst = out.row(y);
    if (depth == CV_8U) {
      const uint8_t* src = mat.ptr<uint8_t>(y);
      if (channels == 1) {
        for (int x = 0; x < mat.cols; ++x) dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = src[x];
      } else {
        for (int x = 0; x < mat.cols; ++x) {
          const uint8_t* p = src + static_cast<std::size_t>(x) * channels;
          dst[3 * x] = p[2];
          dst[3 * x + 1] = p[1];
          dst[3 * x + 2] = p[0];
        }
      }
    } else {
      const uint16_t* src = mat.ptr<uint16_t>(y);
      if (channels == 1) {
        for (int x = 0; x < mat.cols; ++x) dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = clip16(src[x]);
      } else {
        for (int x = 0; x < mat.cols; ++x) {
          const uint16_t* p = src + static_cast<std::size_t>(x) * channels;
          dst[3 * x] = msb16(p[2]);
          dst[3 * x + 1] = msb16(p[1]);
          dst[3 * x + 2] = msb16(p[0]);
        }
      }
    }
  }
  return true;
}

// ---- GIF (giflib) ----------------------------------------------------------------------------

struct MemoryReader {
  const uint8_t* data;
  std::size_t size;
  std::size_t pos;
};

int gif_read(GifFileType* gif, GifByteType* buffer, int length) {
  auto* reader = static_cast<MemoryReader*>(gif->UserData);
  if (length <= 0) return 0;
  const std::size_t n = std::min<std::size_t>(static_cast<std::size_t>(length), reader->size - reader->pos);
  std::memcpy(buffer, reader->data + reader->pos, n);
  reader->pos += n;
  return static_cast<int>(n);
}

struct GifCloser {
  GifFileType* gif = nullptr;
  ~GifCloser() {
    if (gif != nullptr) {
      int error = 0;
      DGifCloseFile(gif, &error);
    }
  }
};

std::string gif_error(int code) {
  const char* text = GifErrorString(code);
  return text != nullptr ? std::string(text) : "giflib error " + std::to_string(code);
}

// First frame of a GIF as Pillow 9.4's GifImagePlugin loads it, then convert('RGB'):
//  * the canvas is the logical screen, grown if the first frame reaches beyond it;
//  * pixels outside the first frame's rectangle hold the frame's transparency index when its
//    graphic control extension sets one, else index 0 (Pillow fills a fresh image with the
//    transparency index for frame 0, otherwise starts from zeros);
//  * the local colour table if present, else the global one; indices beyond the table map to
//    Pillow's default palette entry (i, i, i); no table at all gives mode L (grey = index);
//  * interlaced frames are de-interlaced (giflib's DGifGetLine returns rows in stream order).
RgbImage decode_gif(const uint8_t* data, std::size_t size, const std::string& name, int64_t max_pixels) {
  MemoryReader reader{data, size, 0};
  int error = 0;
  GifCloser closer;
  closer.gif = DGifOpen(&reader, gif_read, &error);
  INTERNVL_CHECK(closer.gif != nullptr, ImageError, name, ": cannot read GIF header (", gif_error(error), ")");
  GifFileType* gif = closer.gif;

  int transparency = -1;
  for (;;) {
    GifRecordType record = UNDEFINED_RECORD_TYPE;
    INTERNVL_CHECK(DGifGetRecordType(gif, &record) == GIF_OK, ImageError, name, ": corrupt or truncated GIF (",
                   gif_error(gif->Error), ")");
    if (record == TERMINATE_RECORD_TYPE) INTERNVL_THROW(ImageError, name, ": GIF contains no image");
    if (record == EXTENSION_RECORD_TYPE) {
      int code = 0;
      GifByteType* block = nullptr;
      INTERNVL_CHECK(DGifGetExtension(gif, &code, &block) == GIF_OK, ImageError, name,
                     ": corrupt or truncated GIF extension (", gif_error(gif->Error), ")");
      if (code == GRAPHICS_EXT_FUNC_CODE && block != nullptr && block[0] >= 4) {
        transparency = (block[1] & 0x01) ? block[4] : -1;
      }
      while (block != nullptr) {
        INTERNVL_CHECK(DGifGetExtensionNext(gif, &block) == GIF_OK, ImageError, name,
                       ": corrupt or truncated GIF extension (", gif_error(gif->Error), ")");
      }
      continue;
    }
    if (record != IMAGE_DESC_RECORD_TYPE) continue;

    INTERNVL_CHECK(DGifGetImageDesc(gif) == GIF_OK, ImageError, name, ": corrupt GIF image descriptor (",
                   gif_error(gif->Error), ")");
    const GifImageDesc& desc = gif->Image;
    const int64_t x0 = desc.Left, y0 = desc.Top, fw = desc.Width, fh = desc.Height;
    check_pixel_count(fw, fh, name, max_pixels);
    const int64_t canvas_w = std::max<int64_t>(gif->SWidth, x0 + fw);
    const int64_t canvas_h = std::max<int64_t>(gif->SHeight, y0 + fh);
    check_pixel_count(canvas_w, canvas_h, name, max_pixels);

    std::vector<uint8_t> indices(static_cast<std::size_t>(canvas_w * canvas_h),
                                 static_cast<uint8_t>(transparency >= 0 ? transparency : 0));
    std::vector<GifPixelType> line(static_cast<std::size_t>(fw));
    auto read_row = [&](int64_t row) {
      INTERNVL_CHECK(DGifGetLine(gif, line.data(), static_cast<int>(fw)) == GIF_OK, ImageError, name,
                     ": corrupt or truncated GIF image data (", gif_error(gif->Error), ")");
      std::memcpy(indices.data() + (y0 + row) * canvas_w + x0, line.data(), static_cast<std::size_t>(fw));
    };
    if (desc.Interlace) {
      // GIF interlacing: rows 0, 8, 16...; then 4, 12...; then 2, 6...; then 1, 3...
      static constexpr int kStart[4] = {0, 4, 2, 1};
      static constexpr int kStep[4] = {8, 8, 4, 2};
      for (int pass = 0; pass < 4; ++pass) {
        for (int64_t row = kStart[pass]; row < fh; row += kStep[pass]) read_row(row);
      }
    } else {
      for (int64_t row = 0; row < fh; ++row) read_row(row);
    }

    // 256-entry palette: the colour table, then Pillow's default grey entries.
    uint8_t palette[256][3];
    for (int i = 0; i < 256; ++i) palette[i][0] = palette[i][1] = palette[i][2] = static_cast<uint8_t>(i);
    const ColorMapObject* map = desc.ColorMap != nullptr ? desc.ColorMap : gif->SColorMap;
    if (map != nullptr && map->Colors != nullptr) {
      const int count = std::min(map->ColorCount, 256);
      for (int i = 0; i < count; ++i) {
        palette[i][0] = map->Colors[i].Red;
        palette[i][1] = map->Colors[i].Green;
        palette[i][2] = map->Colors[i].Blue;
      }
    }
    RgbImage out = allocate(static_cast<int>(canvas_w), static_cast<int>(canvas_h));
    for (std::size_t i = 0; i < indices.size(); ++i) {
      const uint8_t* c = palette[indices[i]];
      out.pixels[3 * i] = c[0];
      out.pixels[3 * i + 1] = c[1];
      out.pixels[3 * i + 2] = c[2];
    }
    return out;
  }
}

// ---- JPEG completeness ---------------------------------------------------------------------

// libjpeg decodes a truncated JPEG with a warning and fills the missing part with grey, where
// Pillow raises "image file is truncated". Walk the marker structure and require an EOI marker
// after the last scan. Returns false when the stream ends first.
bool jpeg_is_complete(const uint8_t* data, std::size_t size) {
  std::size_t pos = 2;  // after SOI
  while (pos + 1 < size) {
    if (data[pos] != 0xFF) {  // extraneous bytes before a marker: libjpeg skips them with a warning
      ++pos;
      continue;
    }
    uint8_t marker = data[pos + 1];
    if (marker == 0xFF) {  // fill byte
      ++pos;
      continue;
    }
    pos += 2;
    if (marker == 0xD9) return true;                                            // EOI
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) continue;        // no payload
    if (pos + 1 >= size) return false;
    const std::size_t length = (static_cast<std::size_t>(data[pos]) << 8) | data[pos + 1];
    if (length < 2 || pos + length > size) return false;
    pos += length;
    if (marker == 0xDA) {
      // Entropy-coded data: runs until a marker other than stuffing (FF 00) or RSTn.
      for (;;) {
        while (pos < size && data[pos] != 0xFF) ++pos;
        if (pos + 1 >= size) return false;
        const uint8_t next = data[pos + 1];
        if (next == 0x00 || (next >= 0xD0 && next <= 0xD7) || next == 0xFF) {
          pos += (next == 0xFF) ? 1 : 2;
          continue;
        }
        break;  // a real marker: back to the segment walk
      }
    }
  }
  return false;
}

RgbImage decode_with_opencv(const uint8_t* data, std::size_t size, const std::string& name, int64_t max_pixels) {
  INTERNVL_CHECK(size <= kMaxEncodedBytes, ImageError, name,
                 ": encoded image too large (", size, " bytes)");
  const bool is_jpeg = size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF;
  if (is_jpeg) {
    INTERNVL_CHECK(jpeg_is_complete(data, size), ImageError, name, ": truncated or corrupt JPEG data");
  }
  // Refuse a decompression bomb from its header, before the decoder allocates anything.
  const auto [declared_w, declared_h] = peek_dimensions(data, size);
  if (declared_w > 0 || declared_h > 0) check_pixel_count(declared_w, declared_h, name, max_pixels);
  const cv::Mat encoded(1, static_cast<int>(size), CV_8U, const_cast<uint8_t*>(data));
  // IMREAD_UNCHANGED keeps 16-bit samples and never applies EXIF orientation.
  const int flags = is_jpeg ? (cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION) : cv::IMREAD_UNCHANGED;
  cv::Mat mat;
  try {
    mat = cv::imdecode(encoded, flags);
  } catch (const cv::Exception& e) {
    INTERNVL_THROW(ImageError, name, ": cannot decode image (", e.what(), ")");
  }
  INTERNVL_CHECK(!mat.empty(), ImageError, name, ": not a decodable image (unknown format, corrupt or truncated)");
  check_pixel_count(mat.cols, mat.rows, name, max_pixels);
  RgbImage out;
  INTERNVL_CHECK(mat_to_rgb(mat, out), ImageError, name, ": unsupported pixel format (OpenCV type ",
                 cv::typeToString(mat.type()), ")");
  return out;
}

uint32_t be16(const uint8_t* p) { return (uint32_t{p[0]} << 8) | p[1]; }
uint32_t be32(const uint8_t* p) { return (be16(p) << 16) | be16(p + 2); }
uint32_t le16(const uint8_t* p) { return (uint32_t{p[1]} << 8) | p[0]; }
uint32_t le32(const uint8_t* p) { return (le16(p + 2) << 16) | le16(p); }

// JPEG: the first SOFn frame header (not DHT C4, JPG C8, DAC CC) holds height then width.
std::pair<int64_t, int64_t> jpeg_dimensions(const uint8_t* data, std::size_t size) {
  std::size_t pos = 2;
  while (pos + 3 < size) {
    if (data[pos] != 0xFF) {
      ++pos;
      continue;
    }
    const uint8_t marker = data[pos + 1];
    if (marker == 0xFF || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD8)) {
      pos += marker == 0xFF ? 1 : 2;
      continue;
    }
    const std::size_t length = be16(data + pos + 2);
    if (marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC) {
      if (pos + 9 > size) return {0, 0};
      return {be16(data + pos + 7), be16(data + pos + 5)};
    }
    if (marker == 0xDA || marker == 0xD9 || length < 2) return {0, 0};  // scan before any frame header
    pos += 2 + length;
  }
  return {0, 0};
}

// TIFF: width (tag 256) and length (257) of the first IFD, SHORT or LONG.
std::pair<int64_t, int64_t> tiff_dimensions(const uint8_t* data, std::size_t size) {
  const bool little = data[0] == 'I';
  const auto u16 = [&](std::size_t at) { return little ? le16(data + at) : be16(data + at); };
  const auto u32 = [&](std::size_t at) { return little ? le32(data + at) : be32(data + at); };
  const std::size_t ifd = u32(4);
  if (ifd + 2 > size) return {0, 0};
  const std::size_t count = u16(ifd);
  int64_t width = 0, height = 0;
  for (std::size_t i = 0; i < count; ++i) {
    const std::size_t entry = ifd + 2 + 12 * i;
    if (entry + 12 > size) break;
    const uint32_t tag = u16(entry), type = u16(entry + 2);
    const int64_t value = type == 3 ? u16(entry + 8) : type == 4 ? u32(entry + 8) : 0;
    if (tag == 256) width = value;
    if (tag == 257) height = value;
  }
  return {width, height};
}

// PNM: "P1".."P7"-style text header "P6 <width> <height>" with '#' comments.
std::pair<int64_t, int64_t> pnm_dimensions(const uint8_t* data, std::size_t size) {
  std::size_t pos = 2;
  int64_t values[2] = {0, 0};
  for (auto& value : values) {
    for (;;) {
      while (pos < size && std::isspace(data[pos])) ++pos;
      if (pos < size && data[pos] == '#') {
        while (pos < size && data[pos] != '\n') ++pos;
        continue;
      }
      break;
    }
    if (pos >= size || !std::isdigit(data[pos])) return {0, 0};
    while (pos < size && std::isdigit(data[pos])) {
      value = value * 10 + (data[pos++] - '0');
      if (value > std::numeric_limits<int32_t>::max()) return {value, 1};  // absurd: refused by the caller
    }
  }
  return {values[0], values[1]};
}

}  // namespace

std::pair<int64_t, int64_t> peek_dimensions(const uint8_t* data, std::size_t size) {
  if (data == nullptr) return {0, 0};
  const auto starts = [&](const char* magic, std::size_t n) { return size >= n && std::memcmp(data, magic, n) == 0; };
  if (starts("\x89PNG\r\n\x1a\n", 8)) {
    if (size < 24 || std::memcmp(data + 12, "IHDR", 4) != 0) return {0, 0};
    return {be32(data + 16), be32(data + 20)};
  }
  if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) return jpeg_dimensions(data, size);
  if (starts("GIF8", 4)) return size >= 10 ? std::pair<int64_t, int64_t>{le16(data + 6), le16(data + 8)}
                                           : std::pair<int64_t, int64_t>{0, 0};
  if (starts("BM", 2)) {
    if (size < 26) return {0, 0};
    if (le32(data + 14) == 12) return {le16(data + 18), le16(data + 20)};  // OS/2 BITMAPCOREHEADER
    const auto h = static_cast<int32_t>(le32(data + 22));                  // negative: top-down rows
    return {static_cast<int32_t>(le32(data + 18)), h < 0 ? -static_cast<int64_t>(h) : h};
  }
  if (size >= 30 && starts("RIFF", 4) && std::memcmp(data + 8, "WEBP", 4) == 0) {
    const uint8_t* chunk = data + 12;
    if (std::memcmp(chunk, "VP8X", 4) == 0) {
      return {1 + int64_t{chunk[8] | (chunk[9] << 8) | (chunk[10] << 16)},
              1 + int64_t{chunk[11] | (chunk[12] << 8) | (chunk[13] << 16)}};
    }
    if (std::memcmp(chunk, "VP8L", 4) == 0) {
      const uint32_t bits = le32(chunk + 9);
      return {1 + int64_t{bits & 0x3FFF}, 1 + int64_t{(bits >> 14) & 0x3FFF}};
    }
    if (std::memcmp(chunk, "VP8 ", 4) == 0) return {le16(chunk + 14) & 0x3FFF, le16(chunk + 16) & 0x3FFF};
    return {0, 0};
  }
  if (size >= 8 && (starts("II*\0", 4) || starts("MM\0*", 4))) return tiff_dimensions(data, size);
  if (size >= 3 && data[0] == 'P' && data[1] >= '1' && data[1] <= '6' && std::isspace(data[2])) {
    return pnm_dimensions(data, size);
  }
  return {0, 0};
}

RgbImage decode_bytes(const uint8_t* data, std::size_t size, const std::string& name, int64_t max_pixels) {
  INTERNVL_CHECK(data != nullptr || size == 0, InvalidArgument, name, ": null image data");
  INTERNVL_CHECK(size > 0, ImageError, name, ": empty image data");
  if (size >= 4 && std::memcmp(data, "GIF8", 4) == 0) return decode_gif(data, size, name, max_pixels);
  return decode_with_opencv(data, size, name, max_pixels);
}

RgbImage decode_file(const std::string& path, int64_t max_pixels) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  INTERNVL_CHECK(!ec && std::filesystem::exists(status), ImageError, path, ": image file not found");
  INTERNVL_CHECK(std::filesystem::is_regular_file(status), ImageError, path, ": not a regular file");
  const auto length = std::filesystem::file_size(path, ec);
  INTERNVL_CHECK(!ec, ImageError, path, ": cannot read image file (", ec.message(), ")");
  INTERNVL_CHECK(length > 0, ImageError, path, ": image file is empty");
  INTERNVL_CHECK(length <= kMaxEncodedBytes, ImageError, path, ": image file too large (", length, " bytes)");
  std::ifstream in(path, std::ios::binary);
  INTERNVL_CHECK(in.is_open(), ImageError, path, ": cannot open image file");
  std::vector<uint8_t> bytes(static_cast<std::size_t>(length));
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(length));
  INTERNVL_CHECK(static_cast<uintmax_t>(in.gcount()) == length, ImageError, path, ": cannot read image file");
  return decode_bytes(bytes.data(), bytes.size(), path, max_pixels);
}

RgbImage from_mat(const cv::Mat& mat) {
  INTERNVL_CHECK(!mat.empty(), InvalidArgument, "from_mat: empty matrix");
  INTERNVL_CHECK(mat.dims == 2, InvalidArgument, "from_mat: expected a 2-D matrix, got ", mat.dims, " dimensions");
  check_pixel_count(mat.cols, mat.rows, "from_mat", kMaxBufferPixels);
  RgbImage out;
  INTERNVL_CHECK(mat_to_rgb(mat, out), InvalidArgument, "from_mat: expected CV_8U or CV_16U with 1, 3 (BGR) or 4 (BGRA) "
                 "channels, got ", cv::typeToString(mat.type()));
  return out;
}

RgbImage from_rgb(const uint8_t* data, int width, int height, std::size_t stride_bytes) {
  INTERNVL_CHECK(data != nullptr, InvalidArgument, "from_rgb: null pixel data");
  INTERNVL_CHECK(width > 0 && height > 0, InvalidArgument, "from_rgb: width and height must be positive, got ", width,
                 "x", height);
  INTERNVL_CHECK(static_cast<int64_t>(width) * height <= kMaxBufferPixels, InvalidArgument, "from_rgb: image too large (",
                 width, "x", height, ")");
  const std::size_t row_bytes = static_cast<std::size_t>(width) * 3;
  if (stride_bytes == 0) stride_bytes = row_bytes;
  INTERNVL_CHECK(stride_bytes >= row_bytes, InvalidArgument, "from_rgb: stride ", stride_bytes,
                 " is smaller than width * 3 = ", row_bytes);
  RgbImage out = allocate(width, height);
  for (int y = 0; y < height; ++y) {
    std::memcpy(out.row(y), data + static_cast<std::size_t>(y) * stride_bytes, row_bytes);
  }
  return out;
}

}  // namespace internvl::preprocess
