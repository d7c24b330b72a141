/// @file
/// Optional LibTorch adapter: tensors in and out without copies. Include only if you link LibTorch.
#pragma once

#include <ATen/core/Tensor.h>

#include "internvl/model.h"

namespace internvl::torch_adapter {

/// The model's own preprocessing for one image: [tiles, 3, S, S] float32 on CPU. Retrieval models
/// give one square tile; chat models give the dynamic tiles (+ thumbnail) of their config.
at::Tensor preprocess(const Model& model, const Image& image);

/// InternViT hidden states [B, 1 + patches, D] for pixel_values [B, 3, S, S]: layer -1 is the
/// last layer (the official last_hidden_state), 0 the embeddings.
at::Tensor vision_hidden_state(const Model& model, const at::Tensor& pixel_values, int layer = -1);

}  ///< namespace internvl::torch_adapter
