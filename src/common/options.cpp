#include <algorithm>
#include <cctype>

#include "common/check.h"
#include "internvl/options.h"
#include "internvl/types.h"

namespace internvl {

const char* to_string(Device device) { return device == Device::kCUDA ? "cuda" : "cpu"; }

const char* to_string(DType dtype) {
  switch (dtype) {
    case DType::kBFloat16: return "bf16";
    case DType::kFloat16: return "fp16";
    default: return "fp32";
  }
}

namespace {
std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
  return text;
}
}  // namespace

Device parse_device(const std::string& text) {
  const auto t = lower(text);
  if (t == "cpu") return Device::kCPU;
  if (t == "cuda" || t == "gpu") return Device::kCUDA;
  INTERNVL_THROW(InvalidArgument, "device '", text, "' is not one of cpu, cuda");
}

void set_device(LoadOptions& options, const std::string& text) {
  const auto colon = text.find(':');
  const Device device = parse_device(text.substr(0, colon));
  int index = 0;
  if (colon != std::string::npos) {
    const std::string digits = text.substr(colon + 1);
    const bool numeric = !digits.empty() && digits.size() <= 4 &&
                         std::all_of(digits.begin(), digits.end(), [](unsigned char c) { return std::isdigit(c); });
    INTERNVL_CHECK(device == Device::kCUDA && numeric, InvalidArgument, "device '", text,
                   "' is not one of cpu, cuda, cuda:N");
    index = std::stoi(digits);
  }
  options.device = device;
  options.device_index = index;
}

DType parse_dtype(const std::string& text) {
  const auto t = lower(text);
  if (t == "fp32" || t == "float32" || t == "float") return DType::kFloat32;
  if (t == "bf16" || t == "bfloat16") return DType::kBFloat16;
  if (t == "fp16" || t == "float16" || t == "half") return DType::kFloat16;
  INTERNVL_THROW(InvalidArgument, "dtype '", text, "' is not one of fp32, bf16, fp16");
}

const char* to_string(EmbedMode mode) { return mode == EmbedMode::kG ? "g" : "c"; }

const char* to_string(FinishReason reason) {
  switch (reason) {
    case FinishReason::kEndOfTurn: return "end_of_turn";
    case FinishReason::kStopString: return "stop_string";
    case FinishReason::kLength: return "length";
    case FinishReason::kCancelled: return "cancelled";
  }
  return "length";
}

EmbedMode parse_embed_mode(const std::string& text) {
  const auto t = lower(text);
  if (t == "c") return EmbedMode::kC;
  if (t == "g") return EmbedMode::kG;
  INTERNVL_THROW(InvalidArgument, "mode '", text, "' is not one of c, g");
}

Image Image::from_file(std::string path) {
  INTERNVL_CHECK(!path.empty(), InvalidArgument, "Image::from_file: empty path");
  Image image;
  image.kind_ = Kind::kFile;
  image.name_ = std::move(path);
  return image;
}

Image Image::from_bytes(std::vector<uint8_t> bytes, std::string name) {
  Image image;
  image.kind_ = Kind::kBytes;
  image.name_ = std::move(name);
  image.data_ = std::move(bytes);
  return image;
}

Image Image::from_rgb(const uint8_t* pixels, int width, int height, std::size_t stride_bytes) {
  INTERNVL_CHECK(pixels != nullptr, InvalidArgument, "Image::from_rgb: pixels is null");
  INTERNVL_CHECK(width > 0 && height > 0, InvalidArgument, "Image::from_rgb: size ", width, "x", height,
                 " must be positive");
  const std::size_t row_bytes = static_cast<std::size_t>(width) * 3;
  if (stride_bytes == 0) stride_bytes = row_bytes;
  INTERNVL_CHECK(stride_bytes >= row_bytes, InvalidArgument, "Image::from_rgb: stride_bytes ", stride_bytes,
                 " is smaller than width * 3 = ", row_bytes);
  Image image;
  image.kind_ = Kind::kRgb;
  image.name_ = "<rgb " + std::to_string(width) + "x" + std::to_string(height) + ">";
  image.width_ = width;
  image.height_ = height;
  image.data_.resize(row_bytes * height);
  for (int y = 0; y < height; ++y) {
    std::copy_n(pixels + y * stride_bytes, row_bytes, image.data_.data() + y * row_bytes);
  }
  return image;
}

}  // namespace internvl
