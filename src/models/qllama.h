// QLLaMA (modeling_qllama.py): a LLaMA decoder whose layers i % cross_attention_frequency == 0
// also cross-attend from the first num_query_token positions to InternViT features. Parameter
// names are the official ones below `qllama.model.`.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/modules/container/modulelist.h>

#include "io/config.h"
#include "nn/layers.h"

namespace internvl::models {

class LlamaMLPImpl : public torch::nn::Module {
 public:
  LlamaMLPImpl(int64_t hidden, int64_t intermediate, const nn::ParamInit& init);
  at::Tensor forward(const at::Tensor& x) const;  // down(silu(gate(x)) * up(x))
  nn::Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(LlamaMLP);

class QLlamaSelfAttentionImpl : public torch::nn::Module {
 public:
  QLlamaSelfAttentionImpl(const io::LlmConfig& config, const nn::ParamInit& init);
  // x [B, L, D]; cos/sin [L, hd]; mask: undefined (fully visible) or bool [B, 1, L, L] (true = attend).
  at::Tensor forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& mask) const;
  io::LlmConfig config;
  nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
};
TORCH_MODULE(QLlamaSelfAttention);

class QLlamaCrossAttentionImpl : public torch::nn::Module {
 public:
  QLlamaCrossAttentionImpl(const io::LlmConfig& config, int64_t vision_hidden, const nn::ParamInit& init);
  // queries [B, nq, D], vision [B, Nv, Dv] -> [B, nq, D] (no mask, no RoPE).
  at::Tensor forward(const at::Tensor& queries, const at::Tensor& vision) const;
  io::LlmConfig config;
  nn::Norm norm1{nullptr}, norm2{nullptr};
  nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
};
TORCH_MODULE(QLlamaCrossAttention);

class QLlamaDecoderLayerImpl : public torch::nn::Module {
 public:
  QLlamaDecoderLayerImpl(const io::LlmConfig& config, int64_t vision_hidden, bool with_cross_attn,
                         const nn::ParamInit& init);
  at::Tensor forward(const at::Tensor& h, const at::Tensor& cos, const at::Tensor& sin, const at::Tensor& mask,
                     const at::Tensor& vision) const;
  io::LlmConfig config;
  nn::Norm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
  QLlamaSelfAttention self_attn{nullptr};
  QLlamaCrossAttention cross_attn{nullptr};  // null in layers without cross-attention
  LlamaMLP mlp{nullptr};
};
TORCH_MODULE(QLlamaDecoderLayer);

// The official `LlamaModel` of modeling_qllama.py (registered as `qllama.model`).
class QLlamaModelImpl : public torch::nn::Module {
 public:
  QLlamaModelImpl(const io::LlmConfig& config, int64_t vision_hidden, const nn::ParamInit& init);

  // Image path (get_image_features): queries [B, nq, D] attend to each other without a mask and
  // cross-attend to vision [B, Nv, Dv]. Returns the final-norm output [B, nq, D].
  at::Tensor forward_queries(const at::Tensor& query_embeds, const at::Tensor& vision) const;

  // Text path (get_text_features): ids [B, L], attend [B, L] bool (false = padding); causal mask
  // plus the padding mask on keys. Returns the final-norm output [B, L, D] (padded rows computed too).
  at::Tensor forward_text(const at::Tensor& input_ids, const at::Tensor& attend) const;

  const io::LlmConfig& config() const { return config_; }

  at::Tensor embed_tokens;  // embed_tokens.weight [V, D]
  torch::nn::ModuleList layers{nullptr};
  nn::Norm norm{nullptr};

 private:
  at::Tensor run(at::Tensor h, const at::Tensor& mask, const at::Tensor& vision) const;
  io::LlmConfig config_;
};
TORCH_MODULE(QLlamaModel);

}  // namespace internvl::models
