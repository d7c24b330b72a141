#include "models/intern_vit.h"

#include <ATen/ATen.h>

#include <tuple>

#include "common/check.h"
#include "kernels/cuda_ops.h"
#include "nn/attention.h"

namespace internvl::models {

// ---- embeddings ------------------------------------------------------------------------------

InternVisionEmbeddingsImpl::InternVisionEmbeddingsImpl(const io::VisionConfig& c, const nn::ParamInit& init)
    : config(c) {
  const auto opts = init.options();
  const int64_t d = c.hidden_size;
  class_embedding = register_parameter("class_embedding", at::empty({1, 1, d}, opts));
  auto patch = register_module("patch_embedding", std::make_shared<torch::nn::Module>());
  patch_weight = patch->register_parameter("weight", at::empty({d, c.num_channels, c.patch_size, c.patch_size}, opts));
  patch_bias = patch->register_parameter("bias", at::empty({d}, opts));
  position_embedding = register_parameter("position_embedding", at::empty({1, c.num_positions(), d}, opts));
}

at::Tensor InternVisionEmbeddingsImpl::position_embedding_for(int64_t grid_h, int64_t grid_w,
                                                              c10::ScalarType dtype) const {
  const int64_t g = config.grid_size();
  if (grid_h == g && grid_w == g) return position_embedding.to(dtype);
  // Official _get_pos_embed: float32 bicubic (align_corners=False) over the trained grid.
  const int64_t d = config.hidden_size;
  auto grid = position_embedding.slice(1, 1).to(at::kFloat).reshape({1, g, g, d}).permute({0, 3, 1, 2});
  auto resized = at::upsample_bicubic2d(grid, {grid_h, grid_w}, /*align_corners=*/false)
                     .reshape({1, d, grid_h * grid_w})
                     .permute({0, 2, 1});
  return at::cat({position_embedding.slice(1, 0, 1).to(dtype), resized.to(dtype)}, 1);
}

at::Tensor InternVisionEmbeddingsImpl::forward(const at::Tensor& pixel_values) const {
  INTERNVL_CHECK(pixel_values.dim() == 4 && pixel_values.size(1) == config.num_channels, InvalidArgument,
                 "InternViT: pixel_values must be [batch, ", config.num_channels, ", H, W], got ",
                 pixel_values.sizes());
  INTERNVL_CHECK(pixel_values.size(2) % config.patch_size == 0 && pixel_values.size(3) % config.patch_size == 0 &&
                     pixel_values.size(2) > 0 && pixel_values.size(3) > 0,
                 InvalidArgument, "InternViT: image height and width must be positive multiples of the patch size ",
                 config.patch_size, ", got ", pixel_values.size(2), "x", pixel_values.size(3));
  const auto dtype = patch_weight.scalar_type();
  auto patches = at::conv2d(pixel_values.to(patch_weight.device(), dtype), patch_weight, patch_bias,
                            {config.patch_size, config.patch_size});  // [B, D, gh, gw]
  const int64_t batch = patches.size(0), grid_h = patches.size(2), grid_w = patches.size(3);
  patches = patches.flatten(2).transpose(1, 2);  // [B, gh*gw, D]
  auto cls = class_embedding.expand({batch, 1, config.hidden_size}).to(dtype);
  return at::cat({cls, patches}, 1) + position_embedding_for(grid_h, grid_w, dtype);
}

// ---- attention -------------------------------------------------------------------------------

InternAttentionImpl::InternAttentionImpl(const io::VisionConfig& c, const nn::ParamInit& init) : config(c) {
  const int64_t d = c.hidden_size;
  qkv = register_module("qkv", nn::Linear(d, 3 * d, c.qkv_bias, init));
  if (c.qk_normalization) {
    // QK-norm is always RMSNorm over the full width (all heads together).
    q_norm = register_module("q_norm", nn::Norm(nn::NormKind::kRMSNorm, d, c.layer_norm_eps, init));
    k_norm = register_module("k_norm", nn::Norm(nn::NormKind::kRMSNorm, d, c.layer_norm_eps, init));
  }
  proj = register_module("proj", nn::Linear(d, d, true, init));
}

at::Tensor InternAttentionImpl::forward(const at::Tensor& x) const {
  const int64_t batch = x.size(0), tokens = x.size(1), d = config.hidden_size;
  const int64_t heads = config.num_attention_heads, head_dim = config.head_dim();
  auto fused = qkv->forward(x);  // [B, N, 3D]: q, then k, then v
  auto q = fused.slice(-1, 0, d);
  auto k = fused.slice(-1, d, 2 * d);
  auto v = fused.slice(-1, 2 * d, 3 * d);
  if (config.qk_normalization) {
    if (!force_aten && kernels::norm_supported(q, q_norm->weight)) {
      std::tie(q, k) = kernels::qk_rms_norm(q, k, q_norm->weight, k_norm->weight, q_norm->eps);  // one launch
    } else {
      q = q_norm->forward(q);
      k = k_norm->forward(k);
    }
  }
  auto split_heads = [&](const at::Tensor& t) { return t.reshape({batch, tokens, heads, head_dim}).transpose(1, 2); };
  nn::AttentionOptions options;
  options.force_aten = force_aten;
  auto out = nn::attention(split_heads(q), split_heads(k), split_heads(v), options);  // [B, H, N, hd]
  return proj->forward(out.transpose(1, 2).reshape({batch, tokens, d}));
}

// ---- MLP and layer ---------------------------------------------------------------------------

InternMLPImpl::InternMLPImpl(const io::VisionConfig& c, const nn::ParamInit& init) {
  fc1 = register_module("fc1", nn::Linear(c.hidden_size, c.intermediate_size, true, init));
  fc2 = register_module("fc2", nn::Linear(c.intermediate_size, c.hidden_size, true, init));
}

at::Tensor InternMLPImpl::forward(const at::Tensor& x) const {
  return fc2->forward(at::gelu(fc1->forward(x)));  // exact (erf) GELU
}

InternVisionEncoderLayerImpl::InternVisionEncoderLayerImpl(const io::VisionConfig& c, const nn::ParamInit& init) {
  const auto kind = nn::parse_norm_kind(c.norm_type);
  norm1 = register_module("norm1", nn::Norm(kind, c.hidden_size, c.layer_norm_eps, init));
  norm2 = register_module("norm2", nn::Norm(kind, c.hidden_size, c.layer_norm_eps, init));
  attn = register_module("attn", InternAttention(c, init));
  mlp = register_module("mlp", InternMLP(c, init));
  ls1 = register_parameter("ls1", at::empty({c.hidden_size}, init.options()));
  ls2 = register_parameter("ls2", at::empty({c.hidden_size}, init.options()));
}

at::Tensor InternVisionEncoderLayerImpl::forward(const at::Tensor& x) const {
  // h = x + attn * ls1 and norm2(h) in one pass on CUDA (the same roundings as written out).
  const auto [normed, h] = norm2->forward_add(attn->forward(norm1->forward(x)) * ls1, x);
  return h + mlp->forward(normed) * ls2;
}

// ---- model -----------------------------------------------------------------------------------

InternVisionModelImpl::InternVisionModelImpl(const io::VisionConfig& c, const nn::ParamInit& init) : config_(c) {
  embeddings = register_module("embeddings", InternVisionEmbeddings(c, init));
  encoder = register_module("encoder", std::make_shared<torch::nn::Module>());
  layers = encoder->register_module("layers", torch::nn::ModuleList());
  for (int i = 0; i < c.num_hidden_layers; ++i) layers->push_back(InternVisionEncoderLayer(c, init));
}

void InternVisionModelImpl::set_force_aten(bool force) {
  for (const auto& layer : *layers) layer->as<InternVisionEncoderLayer>()->attn->force_aten = force;
}

at::Tensor InternVisionModelImpl::hidden_state(const at::Tensor& pixel_values, int index) const {
  const int n_layers = config_.num_hidden_layers;
  const int resolved = index < 0 ? n_layers + 1 + index : index;
  INTERNVL_CHECK(resolved >= 0 && resolved <= n_layers, InvalidArgument, "InternViT: hidden state index ", index,
                 " is outside 0..", n_layers, " (or -", n_layers + 1, "..-1)");
  auto h = embeddings->forward(pixel_values);
  for (int i = 0; i < resolved; ++i) h = (*layers)[i]->as<InternVisionEncoderLayer>()->forward(h);
  return h;
}

VisionOutput InternVisionModelImpl::forward(const at::Tensor& pixel_values) const {
  VisionOutput out;
  out.last_hidden_state = hidden_state(pixel_values, -1);
  out.pooled = out.last_hidden_state.select(1, 0);
  return out;
}

}  // namespace internvl::models
