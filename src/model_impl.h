// Model::Impl: what a loaded checkpoint holds. Internal; shared by the facade and the adapters.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <variant>

#include "internvl/model.h"
#include "io/config.h"
#include "models/intern_vit.h"
#include "preprocess/image.h"

namespace internvl {

struct Model::Impl {
  ModelInfo info;
  LoadOptions options;
  io::ModelFamily family = io::ModelFamily::kInternVL;
  std::optional<io::InternVLConfig> clip_config;       // InternVLModel
  std::optional<io::InternVLChatConfig> chat_config;   // InternVLChatModel
  models::InternVisionModel vision{nullptr};
  c10::ScalarType dtype = c10::kFloat;
  c10::Device device = c10::kCPU;

  // Decoded RGB of a public Image.
  static preprocess::RgbImage decode(const Image& image);
  // Model-specific preprocessing: [tiles, 3, S, S] float32 on CPU.
  at::Tensor preprocess(const Image& image) const;
};

c10::ScalarType to_scalar_type(DType dtype);
c10::Device to_device(Device device, int index);

}  // namespace internvl
