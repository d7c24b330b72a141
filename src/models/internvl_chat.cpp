#include "models/internvl_chat.h"

#include <ATen/ATen.h>

#include <cmath>

#include "common/check.h"

namespace internvl::models {

at::Tensor pixel_shuffle(const at::Tensor& x, double scale, const std::string& ps_version) {
  // Follows the official pixel_shuffle step by step (its names: n, w, h, c).
  const int64_t n = x.size(0), w = x.size(1), h = x.size(2), c = x.size(3);
  const auto h2 = static_cast<int64_t>(h * scale), w2 = static_cast<int64_t>(w * scale);
  const auto c1 = static_cast<int64_t>(c / scale), c2 = static_cast<int64_t>(c / (scale * scale));
  auto y = x.reshape({n, w, h2, c1}).permute({0, 2, 1, 3}).contiguous();
  y = y.view({n, h2, w2, c2});
  if (ps_version != "v1") y = y.permute({0, 2, 1, 3}).contiguous();
  return y;
}

InternVLChatImpl::InternVLChatImpl(const io::InternVLChatConfig& c, const nn::ParamInit& init, bool with_vision,
                                   bool with_language_model)
    : config_(c) {
  if (with_vision) {
    vision_model = register_module("vision_model", InternVisionModel(c.vision, init));
    const int64_t k = std::lround(1.0 / c.downsample_ratio);
    const int64_t in = c.vision.hidden_size * k * k, d = c.llm.hidden_size;
    mlp1 = register_module("mlp1", std::make_shared<torch::nn::Module>());
    mlp1_norm = mlp1->register_module("0", nn::Norm(nn::NormKind::kLayerNorm, in, 1e-5, init));
    mlp1_fc1 = mlp1->register_module("1", nn::Linear(in, d, true, init));
    mlp1_fc2 = mlp1->register_module("3", nn::Linear(d, d, true, init));
  }
  if (with_language_model) language_model = register_module("language_model", CausalLM(c.llm, init));
}

void InternVLChatImpl::adopt_vision(const InternVLChatImpl& donor) {
  vision_model = register_module("vision_model", donor.vision_model);
  mlp1 = register_module("mlp1", donor.mlp1);
  mlp1_norm = donor.mlp1_norm;
  mlp1_fc1 = donor.mlp1_fc1;
  mlp1_fc2 = donor.mlp1_fc2;
}

void InternVLChatImpl::adopt_language_model(const InternVLChatImpl& donor) {
  language_model = register_module("language_model", donor.language_model);
}

at::Tensor InternVLChatImpl::pixel_shuffled(const at::Tensor& pixel_values) const {
  auto vit = config_.select_layer == -1 ? vision_model->forward(pixel_values).last_hidden_state
                                        : vision_model->hidden_state(pixel_values, config_.select_layer);
  vit = vit.slice(1, 1);  // drop CLS
  const auto side = static_cast<int64_t>(std::lround(std::sqrt(static_cast<double>(vit.size(1)))));
  INTERNVL_CHECK(side * side == vit.size(1), InvalidArgument, "extract_feature: ", vit.size(1),
                 " patches do not form a square grid");
  vit = vit.reshape({vit.size(0), side, side, -1});
  const auto shuffled = pixel_shuffle(vit, config_.downsample_ratio, config_.ps_version);
  return shuffled.reshape({shuffled.size(0), -1, shuffled.size(-1)});
}

at::Tensor InternVLChatImpl::project(const at::Tensor& shuffled) const {
  return mlp1_fc2->forward(at::gelu(mlp1_fc1->forward(mlp1_norm->forward(shuffled))));
}

at::Tensor InternVLChatImpl::extract_feature(const at::Tensor& pixel_values) const {
  return project(pixel_shuffled(pixel_values));
}

at::Tensor InternVLChatImpl::embed_with_images(const at::Tensor& input_ids, const at::Tensor& image_features,
                                               int64_t image_token_id) const {
  auto embeds = language_model->embed(input_ids);  // [B, L, D]
  const auto positions = (input_ids.to(embeds.device()) == image_token_id);
  const int64_t slots = positions.sum().item<int64_t>();
  const int64_t rows = image_features.defined() ? image_features.size(0) * image_features.size(1) : 0;
  INTERNVL_CHECK(slots == rows, InvalidArgument, "the prompt has ", slots, " image-context tokens but the images give ",
                 rows, " feature rows");
  if (rows == 0) return embeds;
  const auto flat = image_features.reshape({rows, -1}).to(embeds.scalar_type());
  embeds = embeds.clone();
  embeds.index_put_({positions}, flat);
  return embeds;
}

}  // namespace internvl::models
