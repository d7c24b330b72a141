// Decoder-only language models of the chat checkpoints, with a KV cache, built from the family's
// spec (io/llm_family.h; LLaMA, InternLM2, Qwen2, Qwen3): RMSNorm, RoPE (rotate-half,
// rope_theta, linear/dynamic scaling), GQA, SwiGLU, optional q/k/v and o biases, optional
// per-head q/k RMSNorm (Qwen3), InternLM2's grouped wqkv. Parameter names are the family's
// official ones below `language_model.`.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/modules/container/modulelist.h>

#include <utility>
#include <vector>

#include "io/config.h"
#include "io/llm_family.h"
#include "nn/kv_cache.h"
#include "nn/layers.h"

namespace internvl::models {

// The registered family of config.architecture; throws ConfigError when there is none.
const io::LlmFamily& decoder_family(const io::LlmConfig& config);

class DecoderLayerImpl : public torch::nn::Module {
 public:
  DecoderLayerImpl(const io::LlmConfig& config, const io::LlmFamily& family, const nn::ParamInit& init);
  // h [B, L, D]; cos/sin [L, hd]; appends this layer's keys/values to `cache` (layer `index`).
  at::Tensor forward(const at::Tensor& h, const at::Tensor& cos, const at::Tensor& sin, nn::KVCache& cache,
                     int64_t index) const;
  // One decode step h [B, 1, D] written at the device position `position` (int64 [1]);
  // lengths int32 [B] = position + 1. Reads nothing on the host (CUDA-graph capturable).
  at::Tensor forward_static(const at::Tensor& h, const at::Tensor& cos, const at::Tensor& sin, nn::KVCache& cache,
                            int64_t index, const at::Tensor& position, const at::Tensor& lengths) const;

  // One decode step of several sequences (issue 12): h [B, 1, D], row b at position
  // caches[b]->length() with rope[b] = its cos/sin [1, hd]; appends each row's keys/values to its
  // own cache (layer `index`). The projections run over all rows at once; with row_exact every
  // other operation runs row by row on exactly the shapes a batch of one has, so on CPU (where
  // the GEMV gives each row the bits it gets alone) a sequence's result does not depend on the
  // rest of the batch.
  at::Tensor forward_decode(const at::Tensor& h, const std::vector<std::pair<at::Tensor, at::Tensor>>& rope,
                            const std::vector<nn::KVCache*>& caches, int64_t index, bool row_exact) const;

  io::LlmConfig config;
  io::QkvLayout qkv_layout = io::QkvLayout::kSeparate;
  bool force_aten = false;
  nn::Norm attn_norm{nullptr}, ffn_norm{nullptr};
  nn::Linear wqkv{nullptr};                                      // QkvLayout::kInternLM2Grouped
  nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr};  // QkvLayout::kSeparate
  nn::Norm q_norm{nullptr}, k_norm{nullptr};                     // config.qk_norm
  nn::Linear o_proj{nullptr};
  nn::Linear gate{nullptr}, up{nullptr}, down{nullptr};

 private:
  // [B, L, D] -> q [B, H, L, hd], k/v [B, Hkv, L, hd]
  std::tuple<at::Tensor, at::Tensor, at::Tensor> project_qkv(const at::Tensor& x) const;
  // The two halves of project_qkv: the linear projections ([B, L, *], one tensor for wqkv)...
  std::vector<at::Tensor> qkv_linear(const at::Tensor& x) const;
  // ...and the split into heads with the optional q/k norms.
  std::tuple<at::Tensor, at::Tensor, at::Tensor> qkv_heads(const std::vector<at::Tensor>& projected) const;
  // h + o_proj(attended), then the SwiGLU block with its residual.
  at::Tensor finish(const at::Tensor& h_in, const at::Tensor& attended) const;
};
TORCH_MODULE(DecoderLayer);

// The LLM (`language_model`): `model.*` plus the output head.
class CausalLMImpl : public torch::nn::Module {
 public:
  CausalLMImpl(const io::LlmConfig& config, const nn::ParamInit& init);

  // Token embeddings [B, L, D] for ids [B, L].
  at::Tensor embed(const at::Tensor& input_ids) const;
  // Runs the layers over embeddings [B, L, D] continuing `cache` (positions cache.length()..);
  // returns final-norm hidden states [B, L, D] and advances the cache by L.
  at::Tensor forward(const at::Tensor& inputs_embeds, nn::KVCache& cache) const;
  // The static decode step (CUDA graphs): inputs_embeds [B, 1, D] at the device position
  // `position` (int64 [1], which the caller keeps equal to cache.length()); the cache must have
  // been made with zero_fill and room for the step. Does not advance the cache. RoPE uses
  // `rope_base_value` (fixed for the whole decode: see static_decode_supported()).
  at::Tensor forward_static(const at::Tensor& inputs_embeds, nn::KVCache& cache, const at::Tensor& position,
                            double rope_base_value) const;
  // One decode step of several sequences, each with its own cache (issue 12's engine):
  // inputs_embeds [B, 1, D], row b continuing caches[b]; returns final-norm hidden [B, 1, D] and
  // advances every cache by one. See DecoderLayerImpl::forward_decode for row_exact.
  at::Tensor forward_decode(const at::Tensor& inputs_embeds, const std::vector<nn::KVCache*>& caches,
                            bool row_exact) const;
  // Whether a decode through total_length tokens can use forward_static: the RoPE base must not
  // change within it (dynamic NTK scaling changes it past the trained length).
  bool static_decode_supported(int64_t total_length) const;
  // Embedding lookup without the host-side range check (ids produced on the device by argmax).
  at::Tensor embed_unchecked(const at::Tensor& input_ids) const;
  // Output head: [..., D] -> [..., V] (computed in the model dtype; cast by the caller).
  at::Tensor logits(const at::Tensor& hidden) const;
  // A cache sized for `capacity` tokens in the model's dtype and device.
  // Never more than context_length(): the cache refuses to grow past the context, so memory stays
  // bounded by it.
  nn::KVCache make_cache(int64_t batch, int64_t capacity, bool zero_fill = false) const;
  // Positions the model can attend over: max_position_embeddings, stretched by RoPE scaling.
  int64_t context_length() const;

  void set_force_aten(bool force);
  const io::LlmConfig& config() const { return config_; }
  const io::LlmFamily& family() const { return *family_; }
  // The RoPE base used for a sequence of `seq_len` tokens (dynamic NTK scaling beyond the trained
  // length, as transformers' LlamaDynamicNTKScalingRotaryEmbedding / InternLM2's).
  double rope_base(int64_t seq_len) const;

  at::Tensor embed_weight;   // <names.embed_tokens>.weight [V, D]
  at::Tensor output_weight;  // <names.output_head>.weight [V, D] (tied: embed_weight)
  torch::nn::ModuleList layers{nullptr};
  nn::Norm norm{nullptr};

 private:
  io::LlmConfig config_;
  const io::LlmFamily* family_;
};
TORCH_MODULE(CausalLM);

}  // namespace internvl::models
