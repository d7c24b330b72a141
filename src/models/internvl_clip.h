// InternVL-C and InternVL-G (modeling_internvl.py: InternVLModel, InternVL_C, InternVL_G):
// InternViT + attention-pooling heads + QLLaMA with learnable queries. Parameter names are the
// checkpoint's top-level names.
#pragma once

#include <ATen/core/Tensor.h>

#include "io/config.h"
#include "models/intern_vit.h"
#include "models/qllama.h"
#include "nn/layers.h"

namespace internvl::models {

// AttentionPoolingBlock: the mean of all tokens (CLS included) attends to every token; separate
// LayerNorms (eps 1e-5) for q/k/v inputs and separate q/k/v bias parameters; proj to out_dim.
class AttentionPoolingImpl : public torch::nn::Module {
 public:
  AttentionPoolingImpl(int64_t dim, int64_t heads, int64_t out_dim, const nn::ParamInit& init);
  at::Tensor forward(const at::Tensor& x) const;  // [B, N, dim] -> [B, out_dim]

  int64_t heads;
  nn::Norm norm1_q{nullptr}, norm1_k{nullptr}, norm1_v{nullptr};
  std::shared_ptr<torch::nn::Module> cross_attn;
  nn::Linear q{nullptr}, k{nullptr}, v{nullptr}, proj{nullptr};  // q/k/v without .bias
  at::Tensor q_bias, k_bias, v_bias;
};
TORCH_MODULE(AttentionPooling);

enum class ClipMode { kC, kG };

class InternVLClipImpl : public torch::nn::Module {
 public:
  // Builds the vision part (vision_model, clip_projector) and/or the text part (qllama,
  // clip_projector2); query_tokens, text_projection and logit_scale always. The other part can be
  // taken later from a loaded donor built with it (Model::load reads parts on first use).
  InternVLClipImpl(const io::InternVLConfig& config, const nn::ParamInit& init, bool with_vision = true,
                   bool with_text = true);
  void adopt_vision(const InternVLClipImpl& donor);
  void adopt_text(const InternVLClipImpl& donor);

  // Official encode_image (unnormalised): C = clip_projector(vision); G = C/|C| + g/|g| with
  // g = clip_projector2(QLLaMA(queries, vision)). pixel_values [B, 3, S, S] -> [B, E].
  at::Tensor encode_image(const at::Tensor& pixel_values, ClipMode mode) const;
  // Same from precomputed vision features [B, N, Dv].
  at::Tensor encode_vision_features(const at::Tensor& vision, ClipMode mode) const;
  // QLLaMA outputs over the query tokens for vision features [B, N, Dv] -> [B, nq, Dq].
  at::Tensor query_hidden_state(const at::Tensor& vision) const;
  // Official encode_text: ids [B, L] (id 0 = padding, as `text > 0`), features at index
  // (number of non-pad ids - 1), @ text_projection -> [B, E]. Trailing padding is not computed.
  at::Tensor encode_text(const at::Tensor& input_ids) const;
  // exp(logit_scale) * normalize(image) @ normalize(text)ᵀ -> [n_images, n_texts].
  at::Tensor logits_per_image(const at::Tensor& image_embeds, const at::Tensor& text_embeds) const;

  const io::InternVLConfig& config() const { return config_; }

  InternVisionModel vision_model{nullptr};
  std::shared_ptr<torch::nn::Module> qllama;  // holds `model`
  QLlamaModel qllama_model{nullptr};
  at::Tensor query_tokens;     // [1, nq, Dq]
  at::Tensor text_projection;  // [Dq, E]
  at::Tensor logit_scale;      // []
  AttentionPooling clip_projector{nullptr}, clip_projector2{nullptr};

 private:
  io::InternVLConfig config_;
};
TORCH_MODULE(InternVLClip);

}  // namespace internvl::models
