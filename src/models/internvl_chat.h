// InternVL-Chat (modeling_internvl_chat.py, InternVLChatModel): InternViT -> pixel shuffle ->
// mlp1 projector -> image features merged at <IMG_CONTEXT> positions of an LLM (LLaMA or InternLM2).
#pragma once

#include <ATen/core/Tensor.h>

#include "io/config.h"
#include "models/decoder.h"
#include "models/intern_vit.h"
#include "nn/layers.h"

namespace internvl::models {

// The official pixel_shuffle on [N, h, w, C] with scale 1/k: output [N, h/k, w/k, C*k*k]; version
// "v1" leaves the result transposed (row/column swapped) as the official code does.
at::Tensor pixel_shuffle(const at::Tensor& x, double scale, const std::string& ps_version);

class InternVLChatImpl : public torch::nn::Module {
 public:
  // Builds the vision part (vision_model, mlp1) and/or the language model; the other can be
  // taken later from a loaded donor built with it (Model::load reads parts on first use).
  InternVLChatImpl(const io::InternVLChatConfig& config, const nn::ParamInit& init, bool with_vision = true,
                   bool with_language_model = true);
  void adopt_vision(const InternVLChatImpl& donor);
  void adopt_language_model(const InternVLChatImpl& donor);

  // extract_feature: pixel_values [tiles, 3, S, S] -> [tiles, num_image_token, D_llm].
  at::Tensor extract_feature(const at::Tensor& pixel_values) const;
  // The pixel-shuffled vision features before mlp1: [tiles, num_image_token, 4*Dv (for 0.5)].
  at::Tensor pixel_shuffled(const at::Tensor& pixel_values) const;
  at::Tensor project(const at::Tensor& shuffled) const;  // mlp1

  // Token embeddings of ids [1, L] with the rows at `image_token_id` replaced, in order, by the
  // rows of image_features [tiles, T, D] (flattened tile-major). Counts must agree.
  at::Tensor embed_with_images(const at::Tensor& input_ids, const at::Tensor& image_features,
                               int64_t image_token_id) const;

  const io::InternVLChatConfig& config() const { return config_; }

  InternVisionModel vision_model{nullptr};
  std::shared_ptr<torch::nn::Module> mlp1;
  nn::Norm mlp1_norm{nullptr};          // mlp1.0 (LayerNorm, eps 1e-5)
  nn::Linear mlp1_fc1{nullptr}, mlp1_fc2{nullptr};  // mlp1.1, mlp1.3 (mlp1.2 is GELU)
  CausalLM language_model{nullptr};

 private:
  io::InternVLChatConfig config_;
};
TORCH_MODULE(InternVLChat);

}  // namespace internvl::models
