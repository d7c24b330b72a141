#include "models/internvl_clip.h"

#include <ATen/ATen.h>

#include "common/check.h"
#include "nn/attention.h"

namespace internvl::models {

namespace {
constexpr double kPoolingLayerNormEps = 1e-5;  // partial(nn.LayerNorm, eps=1e-5) in the official heads

at::Tensor l2_normalize(const at::Tensor& x) { return x / x.norm(2, -1, /*keepdim=*/true); }
}  // namespace

AttentionPoolingImpl::AttentionPoolingImpl(int64_t dim, int64_t heads_, int64_t out_dim, const nn::ParamInit& init)
    : heads(heads_) {
  norm1_q = register_module("norm1_q", nn::Norm(nn::NormKind::kLayerNorm, dim, kPoolingLayerNormEps, init));
  norm1_k = register_module("norm1_k", nn::Norm(nn::NormKind::kLayerNorm, dim, kPoolingLayerNormEps, init));
  norm1_v = register_module("norm1_v", nn::Norm(nn::NormKind::kLayerNorm, dim, kPoolingLayerNormEps, init));
  cross_attn = register_module("cross_attn", std::make_shared<torch::nn::Module>());
  q = cross_attn->register_module("q", nn::Linear(dim, dim, false, init));
  k = cross_attn->register_module("k", nn::Linear(dim, dim, false, init));
  v = cross_attn->register_module("v", nn::Linear(dim, dim, false, init));
  q_bias = cross_attn->register_parameter("q_bias", at::empty({dim}, init.options()));
  k_bias = cross_attn->register_parameter("k_bias", at::empty({dim}, init.options()));
  v_bias = cross_attn->register_parameter("v_bias", at::empty({dim}, init.options()));
  proj = cross_attn->register_module("proj", nn::Linear(dim, out_dim, true, init));
}

at::Tensor AttentionPoolingImpl::forward(const at::Tensor& x) const {
  const int64_t batch = x.size(0), tokens = x.size(1), dim = x.size(2);
  auto split = [&](const at::Tensor& t, int64_t n) { return t.reshape({batch, n, heads, dim / heads}).transpose(1, 2); };
  const auto query = norm1_q->forward(x.mean(1, /*keepdim=*/true));
  const auto qh = split(at::linear(query, q->weight, q_bias), 1);
  const auto kh = split(at::linear(norm1_k->forward(x), k->weight, k_bias), tokens);
  const auto vh = split(at::linear(norm1_v->forward(x), v->weight, v_bias), tokens);
  const auto pooled = nn::attention(qh, kh, vh).transpose(1, 2).reshape({batch, dim});
  return proj->forward(pooled);
}

InternVLClipImpl::InternVLClipImpl(const io::InternVLConfig& c, const nn::ParamInit& init, bool with_vision,
                                   bool with_text)
    : config_(c) {
  query_tokens = register_parameter("query_tokens", at::empty({1, c.num_query_token, c.qllama.hidden_size}, init.options()));
  text_projection = register_parameter("text_projection", at::empty({c.qllama.hidden_size, c.clip_embed_dim}, init.options()));
  logit_scale = register_parameter("logit_scale", at::empty({}, init.options()));
  if (with_vision) {
    vision_model = register_module("vision_model", InternVisionModel(c.vision, init));
    clip_projector = register_module(
        "clip_projector", AttentionPooling(c.vision.hidden_size, c.attn_pool_num_heads, c.clip_embed_dim, init));
  }
  if (with_text) {
    qllama = register_module("qllama", std::make_shared<torch::nn::Module>());
    qllama_model = qllama->register_module("model", QLlamaModel(c.qllama, c.vision.hidden_size, init));
    clip_projector2 = register_module(
        "clip_projector2", AttentionPooling(c.qllama.hidden_size, c.attn_pool_num_heads, c.clip_embed_dim, init));
  }
}

void InternVLClipImpl::adopt_vision(const InternVLClipImpl& donor) {
  vision_model = register_module("vision_model", donor.vision_model);
  clip_projector = register_module("clip_projector", donor.clip_projector);
}

void InternVLClipImpl::adopt_text(const InternVLClipImpl& donor) {
  qllama = register_module("qllama", donor.qllama);
  qllama_model = donor.qllama_model;
  clip_projector2 = register_module("clip_projector2", donor.clip_projector2);
}

at::Tensor InternVLClipImpl::query_hidden_state(const at::Tensor& vision) const {
  const auto queries = query_tokens.expand({vision.size(0), query_tokens.size(1), query_tokens.size(2)});
  return qllama_model->forward_queries(queries, vision);
}

at::Tensor InternVLClipImpl::encode_vision_features(const at::Tensor& vision, ClipMode mode) const {
  const auto backbone = clip_projector->forward(vision);
  if (mode == ClipMode::kC) return backbone;
  const auto queries = clip_projector2->forward(query_hidden_state(vision));
  return l2_normalize(backbone) + l2_normalize(queries);
}

at::Tensor InternVLClipImpl::encode_image(const at::Tensor& pixel_values, ClipMode mode) const {
  return encode_vision_features(vision_model->forward(pixel_values).last_hidden_state, mode);
}

at::Tensor InternVLClipImpl::encode_text(const at::Tensor& input_ids) const {
  INTERNVL_CHECK(input_ids.dim() == 2 && input_ids.size(0) > 0 && input_ids.size(1) > 0, InvalidArgument,
                 "encode_text: input_ids must be a non-empty [batch, tokens] tensor, got ", input_ids.sizes());
  const auto ids = input_ids.to(at::kLong);
  const auto attend = ids > 0;
  const auto counts = attend.sum(1);  // official: index = count - 1
  INTERNVL_CHECK(counts.min().item<int64_t>() > 0, InvalidArgument, "encode_text: a text has no non-padding token");
  // Positions after the last non-pad id of every row change nothing before them (causal).
  const auto positions = at::arange(ids.size(1), ids.options());
  const int64_t keep = (attend * (positions + 1)).max().item<int64_t>();
  const auto hidden = qllama_model->forward_text(ids.slice(1, 0, keep), attend.slice(1, 0, keep));
  const auto rows = at::arange(ids.size(0), ids.options()).to(hidden.device());
  const auto picked = hidden.index({rows, (counts - 1).to(hidden.device())});
  return at::matmul(picked, text_projection);
}

at::Tensor InternVLClipImpl::logits_per_image(const at::Tensor& image_embeds, const at::Tensor& text_embeds) const {
  return logit_scale.exp() * at::matmul(l2_normalize(image_embeds), l2_normalize(text_embeds).t());
}

}  // namespace internvl::models
