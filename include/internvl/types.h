// Plain value types of the public API (no LibTorch or OpenCV types).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace internvl {

// An image to read: a file path, encoded bytes (JPEG, PNG, BMP, GIF, WebP, TIFF), or raw
// interleaved 8-bit RGB pixels. Decoding follows the official PIL `convert('RGB')`.
class Image {
 public:
  static Image from_file(std::string path);
  static Image from_bytes(std::vector<uint8_t> bytes, std::string name = "<memory>");
  // Copies `height` rows of `width` RGB pixels, `stride_bytes` apart (0 = width * 3).
  static Image from_rgb(const uint8_t* pixels, int width, int height, std::size_t stride_bytes = 0);

  enum class Kind { kFile, kBytes, kRgb };
  Kind kind() const { return kind_; }
  const std::string& name() const { return name_; }  // the path, or the given name
  const std::vector<uint8_t>& data() const { return data_; }
  int width() const { return width_; }    // kRgb only
  int height() const { return height_; }  // kRgb only

 private:
  Kind kind_ = Kind::kFile;
  std::string name_;
  std::vector<uint8_t> data_;
  int width_ = 0;
  int height_ = 0;
};

// What a loaded checkpoint is.
struct ModelInfo {
  std::string path;                // the checkpoint directory
  std::string architecture;        // config.json architectures[0]: "InternVLModel", "InternVLChatModel"
  std::string language_model;      // "LlamaForCausalLM" (QLLaMA or chat LLM), "InternLM2ForCausalLM"
  int vision_hidden_size = 0;
  int vision_layers = 0;
  int image_size = 0;              // input resolution of the vision tower (per tile for chat models)
  int patch_size = 0;
  std::string vision_norm;         // "rms_norm" | "layer_norm"
  std::size_t num_parameters = 0;  // parameters materialised by this build of the library
  std::vector<std::string> unused_weights;  // checkpoint keys no implemented component consumed
};

}  // namespace internvl
