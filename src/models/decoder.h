// Decoder-only language models of the chat checkpoints, with a KV cache:
//  - LLaMA (transformers LlamaForCausalLM): embed_tokens, self_attn.{q,k,v,o}_proj,
//    input_layernorm / post_attention_layernorm, mlp.{gate,up,down}_proj, lm_head.
//  - InternLM2 (modeling_internlm2.py): tok_embeddings, attention.wqkv (grouped layout) / wo,
//    attention_norm / ffn_norm, feed_forward.w1 (gate) / w3 (up) / w2 (down), output.
// Both: RMSNorm, RoPE (rotate-half, rope_theta, linear/dynamic scaling), GQA, SwiGLU.
// Parameter names are the official ones below `language_model.`.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/modules/container/modulelist.h>

#include "io/config.h"
#include "nn/kv_cache.h"
#include "nn/layers.h"

namespace internvl::models {

enum class DecoderFlavour { kLlama, kInternLM2 };
DecoderFlavour decoder_flavour(const io::LlmConfig& config);

class DecoderLayerImpl : public torch::nn::Module {
 public:
  DecoderLayerImpl(const io::LlmConfig& config, DecoderFlavour flavour, const nn::ParamInit& init);
  // h [B, L, D]; cos/sin [L, hd]; appends this layer's keys/values to `cache` (layer `index`).
  at::Tensor forward(const at::Tensor& h, const at::Tensor& cos, const at::Tensor& sin, nn::KVCache& cache,
                     int64_t index) const;
  // One decode step h [B, 1, D] written at the device position `position` (int64 [1]);
  // lengths int32 [B] = position + 1. Reads nothing on the host (CUDA-graph capturable).
  at::Tensor forward_static(const at::Tensor& h, const at::Tensor& cos, const at::Tensor& sin, nn::KVCache& cache,
                            int64_t index, const at::Tensor& position, const at::Tensor& lengths) const;

  io::LlmConfig config;
  DecoderFlavour flavour;
  bool force_aten = false;
  nn::Norm attn_norm{nullptr}, ffn_norm{nullptr};
  nn::Linear wqkv{nullptr};                                  // InternLM2
  nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr};  // LLaMA
  nn::Linear o_proj{nullptr};
  nn::Linear gate{nullptr}, up{nullptr}, down{nullptr};

 private:
  // [B, L, D] -> q [B, H, L, hd], k/v [B, Hkv, L, hd]
  std::tuple<at::Tensor, at::Tensor, at::Tensor> project_qkv(const at::Tensor& x) const;
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
  DecoderFlavour flavour() const { return flavour_; }
  // The RoPE base used for a sequence of `seq_len` tokens (dynamic NTK scaling beyond the trained
  // length, as transformers' LlamaDynamicNTKScalingRotaryEmbedding / InternLM2's).
  double rope_base(int64_t seq_len) const;

  at::Tensor embed_weight;   // embed_tokens.weight | tok_embeddings.weight [V, D]
  at::Tensor output_weight;  // lm_head.weight | output.weight [V, D] (tied: embed_weight)
  torch::nn::ModuleList layers{nullptr};
  nn::Norm norm{nullptr};

 private:
  io::LlmConfig config_;
  DecoderFlavour flavour_;
};
TORCH_MODULE(CausalLM);

}  // namespace internvl::models
