#include "models/qllama.h"

#include <ATen/ATen.h>

#include "common/check.h"
#include "nn/attention.h"
#include "nn/rotary.h"

namespace internvl::models {

namespace {
// QLLaMA hard-codes the RoPE base (the config's rope_theta is not read by modeling_qllama.py).
constexpr double kQLlamaRopeBase = 10000.0;

at::Tensor split_heads(const at::Tensor& x, int64_t heads) {  // [B, L, H*hd] -> [B, H, L, hd]
  return x.reshape({x.size(0), x.size(1), heads, x.size(2) / heads}).transpose(1, 2);
}
at::Tensor merge_heads(const at::Tensor& x) {  // [B, H, L, hd] -> [B, L, H*hd]
  return x.transpose(1, 2).reshape({x.size(0), x.size(2), x.size(1) * x.size(3)});
}
}  // namespace

LlamaMLPImpl::LlamaMLPImpl(int64_t hidden, int64_t intermediate, const nn::ParamInit& init) {
  gate_proj = register_module("gate_proj", nn::Linear(hidden, intermediate, false, init));
  up_proj = register_module("up_proj", nn::Linear(hidden, intermediate, false, init));
  down_proj = register_module("down_proj", nn::Linear(intermediate, hidden, false, init));
}

at::Tensor LlamaMLPImpl::forward(const at::Tensor& x) const {
  return down_proj->forward(at::silu(gate_proj->forward(x)) * up_proj->forward(x));
}

QLlamaSelfAttentionImpl::QLlamaSelfAttentionImpl(const io::LlmConfig& c, const nn::ParamInit& init) : config(c) {
  const int64_t d = c.hidden_size;
  q_proj = register_module("q_proj", nn::Linear(d, d, false, init));
  k_proj = register_module("k_proj", nn::Linear(d, d, false, init));
  v_proj = register_module("v_proj", nn::Linear(d, d, false, init));
  o_proj = register_module("o_proj", nn::Linear(d, d, false, init));
}

at::Tensor QLlamaSelfAttentionImpl::forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                                            const at::Tensor& mask) const {
  const int64_t heads = config.num_attention_heads;
  const auto q = nn::apply_rotary(split_heads(q_proj->forward(x), heads), cos, sin);
  const auto k = nn::apply_rotary(split_heads(k_proj->forward(x), heads), cos, sin);
  const auto v = split_heads(v_proj->forward(x), heads);
  return o_proj->forward(merge_heads(nn::attention(q, k, v, {}, mask)));
}

QLlamaCrossAttentionImpl::QLlamaCrossAttentionImpl(const io::LlmConfig& c, int64_t vision_hidden,
                                                   const nn::ParamInit& init)
    : config(c) {
  const int64_t d = c.hidden_size;
  q_proj = register_module("q_proj", nn::Linear(d, d, false, init));
  o_proj = register_module("o_proj", nn::Linear(d, d, false, init));
  norm1 = register_module("norm1", nn::Norm(nn::NormKind::kRMSNorm, d, c.rms_norm_eps, init));
  k_proj = register_module("k_proj", nn::Linear(vision_hidden, d, false, init));
  v_proj = register_module("v_proj", nn::Linear(vision_hidden, d, false, init));
  norm2 = register_module("norm2", nn::Norm(nn::NormKind::kRMSNorm, vision_hidden, c.rms_norm_eps, init));
}

at::Tensor QLlamaCrossAttentionImpl::forward(const at::Tensor& queries, const at::Tensor& vision) const {
  const int64_t heads = config.num_attention_heads;
  const auto q = split_heads(q_proj->forward(norm1->forward(queries)), heads);
  const auto v_in = norm2->forward(vision);
  const auto k = split_heads(k_proj->forward(v_in), heads);
  const auto v = split_heads(v_proj->forward(v_in), heads);
  return o_proj->forward(merge_heads(nn::attention(q, k, v)));
}

QLlamaDecoderLayerImpl::QLlamaDecoderLayerImpl(const io::LlmConfig& c, int64_t vision_hidden, bool with_cross_attn,
                                               const nn::ParamInit& init)
    : config(c) {
  self_attn = register_module("self_attn", QLlamaSelfAttention(c, init));
  if (with_cross_attn) cross_attn = register_module("cross_attn", QLlamaCrossAttention(c, vision_hidden, init));
  mlp = register_module("mlp", LlamaMLP(c.hidden_size, c.intermediate_size, init));
  input_layernorm = register_module("input_layernorm", nn::Norm(nn::NormKind::kRMSNorm, c.hidden_size, c.rms_norm_eps, init));
  post_attention_layernorm =
      register_module("post_attention_layernorm", nn::Norm(nn::NormKind::kRMSNorm, c.hidden_size, c.rms_norm_eps, init));
}

at::Tensor QLlamaDecoderLayerImpl::forward(const at::Tensor& h_in, const at::Tensor& cos, const at::Tensor& sin,
                                           const at::Tensor& mask, const at::Tensor& vision) const {
  auto h = h_in + self_attn->forward(input_layernorm->forward(h_in), cos, sin, mask);
  // Cross-attention only with vision features and at least num_query_token positions, on the
  // first num_query_token of them (the official layer's condition).
  const int64_t nq = config.num_query_token;
  if (!cross_attn.is_empty() && vision.defined() && h.size(1) >= nq) {
    auto queries = h.slice(1, 0, nq);
    queries = queries + cross_attn->forward(queries, vision);
    h = h.size(1) == nq ? queries : at::cat({queries, h.slice(1, nq)}, 1);
  }
  return h + mlp->forward(post_attention_layernorm->forward(h));
}

QLlamaModelImpl::QLlamaModelImpl(const io::LlmConfig& c, int64_t vision_hidden, const nn::ParamInit& init)
    : config_(c) {
  INTERNVL_CHECK(c.cross_attention_frequency > 0 && c.num_query_token > 0, ConfigError,
                 "QLLaMA needs positive cross_attention_frequency and num_query_token");
  auto embed = register_module("embed_tokens", std::make_shared<torch::nn::Module>());
  embed_tokens = embed->register_parameter("weight", at::empty({c.vocab_size, c.hidden_size}, init.options()));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    layers->push_back(QLlamaDecoderLayer(c, vision_hidden, i % c.cross_attention_frequency == 0, init));
  }
  norm = register_module("norm", nn::Norm(nn::NormKind::kRMSNorm, c.hidden_size, c.rms_norm_eps, init));
}

at::Tensor QLlamaModelImpl::run(at::Tensor h, const at::Tensor& mask, const at::Tensor& vision) const {
  const auto positions = at::arange(h.size(1), at::TensorOptions().dtype(at::kLong).device(h.device()));
  const auto [cos, sin] = nn::rotary_cos_sin(positions, config_.head_dim(), kQLlamaRopeBase);
  for (const auto& layer : *layers) h = layer->as<QLlamaDecoderLayer>()->forward(h, cos, sin, mask, vision);
  return norm->forward(h);
}

at::Tensor QLlamaModelImpl::forward_queries(const at::Tensor& query_embeds, const at::Tensor& vision) const {
  INTERNVL_CHECK(query_embeds.dim() == 3 && query_embeds.size(2) == config_.hidden_size, InvalidArgument,
                 "QLLaMA: query embeddings must be [batch, queries, ", config_.hidden_size, "], got ",
                 query_embeds.sizes());
  INTERNVL_CHECK(vision.dim() == 3 && vision.size(0) == query_embeds.size(0), InvalidArgument,
                 "QLLaMA: vision features must be [batch, tokens, hidden] with the queries' batch");
  return run(query_embeds, at::Tensor(), vision);
}

at::Tensor QLlamaModelImpl::forward_text(const at::Tensor& input_ids, const at::Tensor& attend) const {
  INTERNVL_CHECK(input_ids.dim() == 2 && attend.sizes() == input_ids.sizes(), InvalidArgument,
                 "QLLaMA: input_ids and attention mask must both be [batch, tokens]");
  INTERNVL_CHECK(input_ids.numel() == 0 || (input_ids.min().item<int64_t>() >= 0 &&
                                            input_ids.max().item<int64_t>() < config_.vocab_size),
                 InvalidArgument, "QLLaMA: token ids must be in 0..", config_.vocab_size - 1);
  const int64_t length = input_ids.size(1);
  const auto h = at::embedding(embed_tokens, input_ids.to(embed_tokens.device()));
  auto causal = at::ones({length, length}, at::TensorOptions().dtype(at::kBool).device(h.device())).tril();
  auto mask = at::logical_and(causal.view({1, 1, length, length}),
                              attend.to(h.device(), at::kBool).view({attend.size(0), 1, 1, length}));
  // A row with every key masked gets the official additive mask's result: uniform over all keys.
  mask = at::logical_or(mask, mask.any(-1, /*keepdim=*/true).logical_not());
  return run(h, mask, at::Tensor());
}

}  // namespace internvl::models
