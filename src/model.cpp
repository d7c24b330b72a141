#include "internvl/model.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <filesystem>
#include <iostream>

#include "common/check.h"
#include "internvl/torch.h"
#include "io/safetensors.h"
#include "io/state_dict.h"
#include "model_impl.h"
#include "preprocess/transforms.h"

namespace fs = std::filesystem;

namespace internvl {

c10::ScalarType to_scalar_type(DType dtype) {
  switch (dtype) {
    case DType::kBFloat16: return c10::kBFloat16;
    case DType::kFloat16: return c10::kHalf;
    default: return c10::kFloat;
  }
}

c10::Device to_device(Device device, int index) {
  if (device == Device::kCUDA) {
    INTERNVL_CHECK(index >= 0, InvalidArgument, "LoadOptions.device_index must be >= 0, got ", index);
    return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  return c10::kCPU;
}

preprocess::RgbImage Model::Impl::decode(const Image& image) {
  switch (image.kind()) {
    case Image::Kind::kBytes: return preprocess::decode_bytes(image.data().data(), image.data().size(), image.name());
    case Image::Kind::kRgb: return preprocess::from_rgb(image.data().data(), image.width(), image.height());
    default: return preprocess::decode_file(image.name());
  }
}

at::Tensor Model::Impl::preprocess(const Image& image) const {
  const auto rgb = decode(image);
  if (chat_config) {
    preprocess::TilingOptions tiling;
    tiling.tile_size = chat_config->image_size();
    tiling.use_thumbnail = chat_config->use_thumbnail;
    tiling.min_tiles = chat_config->dynamic_image_size ? chat_config->min_dynamic_patch : 1;
    tiling.max_tiles = chat_config->dynamic_image_size ? chat_config->max_dynamic_patch : 1;
    return preprocess::normalize_imagenet(preprocess::dynamic_tiles(rgb, tiling).tiles);
  }
  return preprocess::normalize_imagenet({preprocess::retrieval_transform(rgb, clip_config->vision.image_size)});
}

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;
Model::~Model() = default;

const ModelInfo& Model::info() const { return impl_->info; }
const LoadOptions& Model::options() const { return impl_->options; }

Model Model::load(const std::string& directory, const LoadOptions& options) {
  INTERNVL_CHECK(fs::is_directory(directory), ConfigError, "model directory '", directory, "' does not exist");
  INTERNVL_CHECK(options.num_threads >= 0, InvalidArgument, "LoadOptions.num_threads must be >= 0, got ",
                 options.num_threads);
  if (options.num_threads > 0) at::set_num_threads(options.num_threads);

  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->dtype = to_scalar_type(options.dtype);
  impl->device = to_device(options.device, options.device_index);
  INTERNVL_CHECK(options.device != Device::kCUDA || at::hasCUDA(), InvalidArgument,
                 "LoadOptions.device is cuda but no CUDA device is available");

  const std::string config_path = (fs::path(directory) / "config.json").string();
  const auto json = io::read_config_json(config_path);
  impl->family = io::detect_family(json, config_path);
  io::VisionConfig vision_config;
  ModelInfo& info = impl->info;
  info.path = directory;
  if (impl->family == io::ModelFamily::kInternVL) {
    impl->clip_config = io::parse_internvl_config(json, config_path);
    vision_config = impl->clip_config->vision;
    info.architecture = "InternVLModel";
    info.language_model = impl->clip_config->qllama.architecture;
    info.image_size = vision_config.image_size;
  } else {
    impl->chat_config = io::parse_internvl_chat_config(json, config_path);
    vision_config = impl->chat_config->vision;
    info.architecture = "InternVLChatModel";
    info.language_model = impl->chat_config->llm.architecture;
    info.image_size = impl->chat_config->image_size();
  }
  info.vision_hidden_size = vision_config.hidden_size;
  info.vision_layers = vision_config.num_hidden_layers;
  info.patch_size = vision_config.patch_size;
  info.vision_norm = vision_config.norm_type;

  const io::Checkpoint checkpoint(directory);
  nn::ParamInit init{impl->dtype, impl->device};
  impl->vision = models::InternVisionModel(vision_config, init);
  impl->vision->set_force_aten(options.force_aten);
  io::LoadOptions load;
  load.dtype = impl->dtype;
  load.device = impl->device;
  load.prefix = "vision_model.";
  io::load_state_dict(*impl->vision, checkpoint, load);
  impl->vision->eval();

  // Keys of components this build does not implement yet stay unused and are reported.
  std::set<std::string> used;
  for (const auto& p : impl->vision->named_parameters(true)) {
    used.insert(load.prefix + p.key());
    info.num_parameters += p.value().numel();
  }
  for (const auto& name : checkpoint.names()) {
    if (!used.count(name)) info.unused_weights.push_back(name);
  }
  return Model(std::move(impl));
}

namespace torch_adapter {

at::Tensor preprocess(const Model& model, const Image& image) { return model.impl().preprocess(image); }

at::Tensor vision_hidden_state(const Model& model, const at::Tensor& pixel_values, int layer) {
  at::NoGradGuard no_grad;
  auto& impl = model.impl();
  return impl.vision->hidden_state(pixel_values.to(impl.device, impl.dtype), layer);
}

}  // namespace torch_adapter
}  // namespace internvl
