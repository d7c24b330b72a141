// InternViT (modeling_intern_vit.py, InternVisionModel): both the 6B style (RMSNorm, QK-norm,
// no qkv bias) and the 300M style (LayerNorm, qkv bias); layer scale in both. Parameter names
// are the official ones below `vision_model.`.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/modules/container/modulelist.h>

#include <vector>

#include "io/config.h"
#include "nn/layers.h"

namespace internvl::models {

class InternVisionEmbeddingsImpl : public torch::nn::Module {
 public:
  InternVisionEmbeddingsImpl(const io::VisionConfig& config, const nn::ParamInit& init);
  // [B, 3, H, W] -> [B, 1 + (H/p)(W/p), D]
  at::Tensor forward(const at::Tensor& pixel_values) const;
  // Position embedding for an h x w patch grid (bicubic interpolation of the trained grid when it
  // differs, as the official _get_pos_embed). [1, 1 + h*w, D]
  at::Tensor position_embedding_for(int64_t grid_h, int64_t grid_w, c10::ScalarType dtype) const;

  io::VisionConfig config;
  at::Tensor class_embedding;     // [1, 1, D]
  at::Tensor patch_weight;        // patch_embedding.weight [D, 3, p, p]
  at::Tensor patch_bias;          // patch_embedding.bias [D]
  at::Tensor position_embedding;  // [1, 1 + g*g, D]
};
TORCH_MODULE(InternVisionEmbeddings);

class InternAttentionImpl : public torch::nn::Module {
 public:
  InternAttentionImpl(const io::VisionConfig& config, const nn::ParamInit& init);
  at::Tensor forward(const at::Tensor& x) const;  // [B, N, D] -> [B, N, D]

  io::VisionConfig config;
  bool force_aten = false;
  nn::Linear qkv{nullptr}, proj{nullptr};
  nn::Norm q_norm{nullptr}, k_norm{nullptr};  // only with qk_normalization
};
TORCH_MODULE(InternAttention);

class InternMLPImpl : public torch::nn::Module {
 public:
  InternMLPImpl(const io::VisionConfig& config, const nn::ParamInit& init);
  at::Tensor forward(const at::Tensor& x) const;
  nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(InternMLP);

class InternVisionEncoderLayerImpl : public torch::nn::Module {
 public:
  InternVisionEncoderLayerImpl(const io::VisionConfig& config, const nn::ParamInit& init);
  at::Tensor forward(const at::Tensor& x) const;

  nn::Norm norm1{nullptr}, norm2{nullptr};
  InternAttention attn{nullptr};
  InternMLP mlp{nullptr};
  at::Tensor ls1, ls2;  // layer scale [D]
};
TORCH_MODULE(InternVisionEncoderLayer);

struct VisionOutput {
  at::Tensor last_hidden_state;  // [B, N, D] residual stream after the last layer run (no final norm)
  at::Tensor pooled;             // [B, D] the CLS token of last_hidden_state
};

class InternVisionModelImpl : public torch::nn::Module {
 public:
  InternVisionModelImpl(const io::VisionConfig& config, const nn::ParamInit& init);

  // Runs every layer. pixel_values [B, 3, H, W] with H, W multiples of the patch size.
  VisionOutput forward(const at::Tensor& pixel_values) const;
  // hidden_states[index] of the official encoder output (0 = embeddings, L = last layer; negative
  // counts from the end, as the chat models' select_layer), running only the layers needed.
  at::Tensor hidden_state(const at::Tensor& pixel_values, int index) const;

  void set_force_aten(bool force);
  const io::VisionConfig& config() const { return config_; }

  InternVisionEmbeddings embeddings{nullptr};
  std::shared_ptr<torch::nn::Module> encoder;  // holds `layers`
  torch::nn::ModuleList layers{nullptr};

 private:
  io::VisionConfig config_;
};
TORCH_MODULE(InternVisionModel);

}  // namespace internvl::models
