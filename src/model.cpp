#include "internvl/model.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <future>
#include <fstream>
#include <numeric>
#include <iostream>

#include "common/check.h"
#include "common/eigen_tensor.h"
#include "common/thread_pool.h"
#include "generation/generator.h"
#include "tokenizer/chat_template.h"
#include "internvl/torch.h"
#include "io/hf_cache.h"
#include "io/memory_check.h"
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

preprocess::RgbImage Model::Impl::decode(const Image& image) const {
  const int64_t max_pixels = options.max_image_pixels;
  switch (image.kind()) {
    case Image::Kind::kBytes:
      return preprocess::decode_bytes(image.data().data(), image.data().size(), image.name(), max_pixels);
    case Image::Kind::kRgb:
      INTERNVL_CHECK(max_pixels <= 0 || int64_t{image.width()} * image.height() <= max_pixels, ImageError,
                     image.name(), ": image too large (at most ", max_pixels,
                     " pixels allowed, see LoadOptions.max_image_pixels)");
      return preprocess::from_rgb(image.data().data(), image.width(), image.height());
    default: return preprocess::decode_file(image.name(), max_pixels);
  }
}

at::Tensor Model::Impl::preprocess(const Image& image, int max_tiles) const {
  const auto rgb = decode(image);
  if (chat_config) {
    INTERNVL_CHECK(max_tiles >= 0, InvalidArgument, "max_tiles must be >= 0, got ", max_tiles);
    preprocess::TilingOptions tiling;
    tiling.tile_size = chat_config->image_size();
    tiling.use_thumbnail = chat_config->use_thumbnail;
    tiling.min_tiles = chat_config->dynamic_image_size ? chat_config->min_dynamic_patch : 1;
    tiling.max_tiles = chat_config->dynamic_image_size ? chat_config->max_dynamic_patch : 1;
    if (max_tiles > 0) {
      tiling.max_tiles = max_tiles;
      tiling.min_tiles = std::min(tiling.min_tiles, max_tiles);
    }
    return preprocess::normalize_imagenet(preprocess::dynamic_tiles(rgb, tiling).tiles);
  }
  return preprocess::normalize_imagenet({preprocess::retrieval_transform(rgb, clip_config->vision.image_size)});
}

namespace {

// FNV-1a over config.json and the checkpoint's tensor names and shapes: two folders with the same
// model give the same id; another model or a changed config gives another.
std::string make_model_id(const ModelInfo& info, const std::string& config_path, const io::Checkpoint& checkpoint) {
  uint64_t hash = 1469598103934665603ull;
  auto mix = [&](const std::string& text) {
    for (unsigned char c : text) hash = (hash ^ c) * 1099511628211ull;
  };
  std::ifstream in(config_path, std::ios::binary);
  mix(std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()));
  for (const auto& name : checkpoint.names()) {
    mix(name);
    for (const auto d : checkpoint.tensor(name).shape) mix(std::to_string(d) + ",");
  }
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(hash));
  return info.architecture + ":" + hex;
}

Matrix rows_normalised(const at::Tensor& t, bool normalize) {
  return to_matrix(normalize ? t / t.norm(2, -1, true) : t);
}

void check_batch_size(int batch_size) {
  INTERNVL_CHECK(batch_size > 0, InvalidArgument, "batch_size must be positive, got ", batch_size);
}

}  // namespace

// ---- retrieval -------------------------------------------------------------------------------

const models::InternVLClipImpl& Model::Impl::require_clip(const char* operation) const {
  INTERNVL_CHECK(!clip.is_empty(), UnsupportedError, operation, " needs an InternVL-C/G checkpoint (InternVLModel); ",
                 info.path, " is ", info.architecture);
  return *clip;
}

const tokenizer::Tokenizer& Model::Impl::require_tokenizer(const char* operation) const {
  INTERNVL_CHECK(tokenizer != nullptr, ConfigError, operation, " needs a tokenizer in ", info.path,
                 " (tokenizer.model, or vocab.json + merges.txt, or tokenizer.json), which is missing");
  return *tokenizer;
}

at::Tensor Model::Impl::encode_images(const std::vector<Image>& images, const EmbedOptions& options,
                                      const BatchSink& sink) const {
  const auto& model = require_clip("embed_image");
  check_batch_size(options.batch_size);
  INTERNVL_CHECK(options.preprocess_threads >= 0, InvalidArgument, "EmbedOptions.preprocess_threads must be >= 0, got ",
                 options.preprocess_threads);
  const auto mode = options.mode == EmbedMode::kG ? models::ClipMode::kG : models::ClipMode::kC;
  // No images, nothing to read: an empty call on a text-only load stays text-only.
  if (!images.empty()) ensure(mode == models::ClipMode::kG ? ModelParts::kVision | ModelParts::kText : ModelParts::kVision);
  const size_t batch = static_cast<size_t>(options.batch_size);
  const size_t batches = (images.size() + batch - 1) / batch;
  // [images in batch b, 3, S, S]: decoding and resizing are deterministic, so where it runs
  // cannot change the result.
  auto pixels_of = [&](size_t b) {
    std::vector<at::Tensor> pixels;
    for (size_t i = b * batch; i < std::min(images.size(), (b + 1) * batch); ++i) pixels.push_back(preprocess(images[i]));
    return at::cat(pixels, 0);
  };
  // Pipelining: while batch b runs through the vision model, the pool prepares b+1 .. b+threads.
  // Futures are taken in order, so an ImageError in a later batch surfaces only after the
  // batches before it, exactly as without the pool. Declared after `ahead` so that on an
  // exception the pool stops (and waits for running tasks) before the futures go.
  const size_t threads = std::min<size_t>(static_cast<size_t>(options.preprocess_threads), batches > 0 ? batches - 1 : 0);
  std::deque<std::future<at::Tensor>> ahead;
  std::optional<common::ThreadPool> pool;
  if (threads > 0) pool.emplace(static_cast<int>(threads));
  size_t submitted = 0;
  auto top_up = [&](size_t current) {
    while (submitted < batches && submitted <= current + threads) {
      ahead.push_back(pool->submit([&pixels_of, b = submitted] { return pixels_of(b); }));
      ++submitted;
    }
  };
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> out;
  for (size_t b = 0; b < batches; ++b) {
    at::Tensor pixels;
    if (pool) {
      top_up(b);
      pixels = ahead.front().get();
      ahead.pop_front();
      top_up(b);  // b+1 .. b+threads are queued before this batch's forward starts
    } else {
      pixels = pixels_of(b);
    }
    auto rows = model.encode_image(pixels.to(device, dtype), mode).to(at::kCPU, at::kFloat);
    if (sink) {
      if (!sink(static_cast<int64_t>(b * batch), rows)) break;
    } else {
      out.push_back(std::move(rows));
    }
  }
  if (out.empty()) return at::empty({0, clip_config->clip_embed_dim}, at::kFloat);
  return at::cat(out, 0);
}

at::Tensor Model::Impl::encode_texts(const std::vector<std::string>& texts, const EmbedOptions& options) const {
  const auto& model = require_clip("embed_text");
  const auto& tok = require_tokenizer("embed_text");
  check_batch_size(options.batch_size);
  INTERNVL_CHECK(!options.on_batch, InvalidArgument, "EmbedOptions.on_batch is for embed_image only");
  if (!texts.empty()) ensure(ModelParts::kText);
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> out;
  for (size_t start = 0; start < texts.size(); start += options.batch_size) {
    std::vector<at::Tensor> rows;
    for (size_t i = start; i < std::min(texts.size(), start + options.batch_size); ++i) {
      const auto encoding = tok.encode_for_retrieval(texts[i]);
      rows.push_back(at::tensor(encoding.input_ids, at::kLong));
    }
    out.push_back(model.encode_text(at::stack(rows, 0).to(device)).to(at::kCPU, at::kFloat));
  }
  if (out.empty()) return at::empty({0, clip_config->clip_embed_dim}, at::kFloat);
  return at::cat(out, 0);
}

Matrix Model::embed_image(const std::vector<Image>& images, const EmbedOptions& options) const {
  if (!options.on_batch) return rows_normalised(impl_->encode_images(images, options), options.normalize);
  impl_->encode_images(images, options, [&](int64_t first, const at::Tensor& rows) {
    return options.on_batch(first, rows_normalised(rows, options.normalize));
  });
  return Matrix(0, impl_->clip_config->clip_embed_dim);
}

Matrix Model::embed_text(const std::vector<std::string>& texts, const EmbedOptions& options) const {
  return rows_normalised(impl_->encode_texts(texts, options), options.normalize);
}

float Model::logit_scale() const {
  at::NoGradGuard no_grad;
  return impl_->require_clip("logit_scale").logit_scale.exp().item<float>();
}

Matrix Model::logits_per_image(const Matrix& image_embeds, const Matrix& text_embeds) const {
  const auto& model = impl_->require_clip("logits_per_image");
  INTERNVL_CHECK(image_embeds.cols() == text_embeds.cols() && image_embeds.cols() == impl_->clip_config->clip_embed_dim,
                 InvalidArgument, "logits_per_image: embeddings must have ", impl_->clip_config->clip_embed_dim,
                 " columns, got ", image_embeds.cols(), " and ", text_embeds.cols());
  at::NoGradGuard no_grad;
  return to_matrix(model.logits_per_image(to_tensor(image_embeds), to_tensor(text_embeds)).to(at::kFloat));
}

const std::string& Model::model_id() const { return impl_->model_id; }

Index Model::create_index(EmbedMode mode, const IndexOptions& options) const {
  impl_->require_clip("create_index");
  return Index(impl_->model_id, mode, impl_->clip_config->clip_embed_dim, options);
}

namespace {

// Options for embedding queries against `index`, after checking it holds this model's embeddings.
EmbedOptions query_options(const Model::Impl& impl, const Index& index, int batch_size) {
  impl.require_clip("retrieve");
  INTERNVL_CHECK(index.model_id() == impl.model_id, InvalidArgument, "retrieve: the index holds embeddings of '",
                 index.model_id(), "', not of this model ('", impl.model_id, "')");
  EmbedOptions options;
  options.mode = index.mode();
  options.batch_size = batch_size;
  return options;
}

}  // namespace

std::vector<std::vector<SearchHit>> Model::retrieve(const std::vector<std::string>& texts, const Index& index, int k,
                                                    int batch_size) const {
  return index.search(embed_text(texts, query_options(*impl_, index, batch_size)), k);
}

std::vector<std::vector<SearchHit>> Model::retrieve(const std::vector<Image>& images, const Index& index, int k,
                                                    int batch_size) const {
  return index.search(embed_image(images, query_options(*impl_, index, batch_size)), k);
}

Matrix Model::zero_shot_weights(const std::vector<std::string>& class_names, const std::vector<std::string>& templates,
                                const EmbedOptions& options) const {
  impl_->require_clip("zero_shot_weights");
  INTERNVL_CHECK(!class_names.empty(), InvalidArgument, "zero_shot_weights: no class names");
  INTERNVL_CHECK(!templates.empty(), InvalidArgument, "zero_shot_weights: no templates");
  for (const auto& t : templates) {
    INTERNVL_CHECK(t.find("{}") != std::string::npos, InvalidArgument, "zero_shot_weights: template '", t,
                   "' has no {} placeholder");
  }
  std::vector<at::Tensor> weights;
  for (const auto& name : class_names) {
    std::vector<std::string> texts;
    for (const auto& t : templates) {
      std::string text = t;
      for (auto pos = text.find("{}"); pos != std::string::npos; pos = text.find("{}", pos + name.size())) {
        text.replace(pos, 2, name);
      }
      texts.push_back(std::move(text));
    }
    auto e = impl_->encode_texts(texts, options);
    e = e / e.norm(2, -1, true);
    auto mean = e.mean(0);
    weights.push_back(mean / mean.norm());
  }
  return to_matrix(at::stack(weights, 0));
}

std::vector<std::vector<ClassScore>> Model::classify(const std::vector<Image>& images, const Matrix& class_weights,
                                                     const std::vector<std::string>& class_names, int k,
                                                     const EmbedOptions& options) const {
  impl_->require_clip("classify");
  INTERNVL_CHECK(class_weights.rows() == static_cast<Eigen::Index>(class_names.size()) && class_weights.rows() > 0,
                 InvalidArgument, "classify: ", class_weights.rows(), " class weight rows for ", class_names.size(),
                 " class names");
  INTERNVL_CHECK(k > 0, InvalidArgument, "classify: k must be positive, got ", k);
  INTERNVL_CHECK(!options.on_batch, InvalidArgument, "classify: EmbedOptions.on_batch is for embed_image only");
  auto image = impl_->encode_images(images, options);
  image = image / image.norm(2, -1, true);
  const auto scores = at::matmul(image, to_tensor(class_weights).t());  // [images, classes]
  const auto probs = at::softmax(scores * logit_scale(), 1);
  const int64_t top = std::min<int64_t>(k, scores.size(1));
  const auto [values, indices] = at::topk(scores, top, 1);
  std::vector<std::vector<ClassScore>> out(images.size());
  for (size_t i = 0; i < images.size(); ++i) {
    for (int64_t j = 0; j < top; ++j) {
      const auto c = indices[i][j].item<int64_t>();
      out[i].push_back({static_cast<int>(c), class_names[c], values[i][j].item<float>(), probs[i][c].item<float>()});
    }
  }
  return out;
}

// ---- chat ------------------------------------------------------------------------------------

const std::string& Model::chat_template() const {
  INTERNVL_CHECK(impl_->chat_config.has_value(), UnsupportedError, "chat_template needs an InternVL-Chat checkpoint; ",
                 impl_->info.path, " is ", impl_->info.architecture);
  return impl_->chat_config->template_name;
}

generation::ChatPipeline& require_chat(const Model::Impl& impl, const char* operation) {
  INTERNVL_CHECK(!impl.chat.is_empty(), UnsupportedError, operation,
                 " needs an InternVL-Chat checkpoint (InternVLChatModel); ", impl.info.path, " is ",
                 impl.info.architecture);
  impl.require_tokenizer(operation);
  impl.ensure(ModelParts::kLanguageModel);
  INTERNVL_CHECK(impl.chat_pipeline != nullptr, UnsupportedError, operation, ": ", impl.info.path,
                 " has no chat pipeline");
  return *impl.chat_pipeline;
}

struct ChatHandle::State {
  std::shared_ptr<generation::ChatJob> job;
};

ChatHandle::ChatHandle() = default;
ChatHandle::~ChatHandle() = default;
ChatHandle::ChatHandle(const ChatHandle&) = default;
ChatHandle& ChatHandle::operator=(const ChatHandle&) = default;
ChatHandle::ChatHandle(ChatHandle&&) noexcept = default;
ChatHandle& ChatHandle::operator=(ChatHandle&&) noexcept = default;
ChatHandle::ChatHandle(std::shared_ptr<State> state) : state_(std::move(state)) {}
bool ChatHandle::valid() const { return state_ != nullptr; }

ChatResult ChatHandle::get() const {
  INTERNVL_CHECK(valid(), InvalidArgument, "ChatHandle::get on an empty handle");
  return generation::ChatPipeline::wait(*state_->job);
}

bool ChatHandle::ready() const { return valid() && generation::ChatPipeline::ready(*state_->job); }

void ChatHandle::cancel() const {
  if (valid()) generation::ChatPipeline::cancel(*state_->job);
}

ChatResult Model::chat(const ChatRequest& request, const StreamCallback& on_text) const {
  return submit_chat(request, on_text).get();
}

ChatHandle Model::submit_chat(const ChatRequest& request, const StreamCallback& on_text) const {
  auto& pipeline = require_chat(*impl_, "chat");
  return ChatHandle(std::make_shared<ChatHandle::State>(ChatHandle::State{pipeline.submit(request, on_text)}));
}

std::vector<ChatResult> Model::chat_batch(const std::vector<ChatRequest>& requests,
                                          const std::vector<StreamCallback>& on_text) const {
  auto& pipeline = require_chat(*impl_, "chat_batch");
  const std::vector<generation::TextCallback> callbacks(on_text.begin(), on_text.end());
  const auto jobs = pipeline.submit_all(requests, callbacks);
  std::vector<ChatResult> results;
  std::exception_ptr first_error;
  for (const auto& job : jobs) {
    try {
      results.push_back(generation::ChatPipeline::wait(*job));
    } catch (...) {
      if (!first_error) first_error = std::current_exception();
      results.emplace_back();
    }
  }
  if (first_error) std::rethrow_exception(first_error);
  return results;
}

const std::vector<std::string>& Model::default_templates() {
  static const std::vector<std::string> templates = {
      "a photo of a {}.",         "a good photo of a {}.",      "a bad photo of a {}.",
      "a close-up photo of a {}.", "a bright photo of a {}.",   "a dark photo of a {}.",
      "a cropped photo of a {}.", "a blurry photo of a {}.",    "a photo of the large {}.",
      "a photo of the small {}.", "a photo of one {}.",         "a photo of many {}.",
      "a drawing of a {}.",       "a painting of the {}.",      "a sketch of a {}.",
      "a rendering of a {}.",     "a black and white photo of a {}.", "a low resolution photo of a {}.",
      "art of the {}.",           "itap of a {}.",
  };
  return templates;
}

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;
Model::~Model() = default;

const ModelInfo& Model::info() const { return impl_->info; }
const LoadOptions& Model::options() const { return impl_->options; }

namespace {

constexpr ModelParts kEachPart[] = {ModelParts::kVision, ModelParts::kText, ModelParts::kLanguageModel};

bool has_bits(unsigned set, ModelParts part) { return (set & static_cast<unsigned>(part)) != 0; }

// Checkpoint keys of each part; what is under none (query_tokens, text_projection, logit_scale)
// is read with the model.
std::vector<std::string> part_prefixes(bool clip, ModelParts part) {
  switch (part) {
    case ModelParts::kVision:
      return clip ? std::vector<std::string>{"vision_model.", "clip_projector."}
                  : std::vector<std::string>{"vision_model.", "mlp1."};
    case ModelParts::kText: return {"qllama.", "clip_projector2."};
    case ModelParts::kLanguageModel: return {"language_model."};
    default: return {};
  }
}

bool under_any(const std::string& name, const std::vector<std::string>& prefixes) {
  for (const auto& prefix : prefixes) {
    if (name.compare(0, prefix.size(), prefix) == 0) return true;
  }
  return false;
}

void check_load_memory(const LoadOptions& options, const std::string& directory, const io::Checkpoint& checkpoint,
                       c10::ScalarType dtype, const std::function<bool(const std::string&)>& include) {
  if (!options.check_memory || options.device != Device::kCPU) return;
  // Parameters are allocated before they are filled: check first, fail with a clear error.
  if (const auto available = io::available_cpu_memory()) {
    io::check_memory(directory, io::estimate_load_memory(checkpoint, dtype, include), *available,
                     std::getenv("INTERNVL_MEMORY_LIMIT_BYTES") ? "INTERNVL_MEMORY_LIMIT_BYTES" : "MemAvailable");
  }
}

}  // namespace

ModelParts Model::loaded_parts() const {
  return static_cast<ModelParts>(impl_->loaded_parts.load(std::memory_order_acquire));
}

void Model::Impl::ensure(ModelParts parts) const {
  const unsigned wanted = static_cast<unsigned>(parts) & static_cast<unsigned>(available_parts);
  if ((loaded_parts.load(std::memory_order_acquire) & wanted) == wanted) return;
  std::lock_guard<std::mutex> lock(parts_mutex);
  // Reading a part left out at load changes no answer of the model, only when its weights arrive.
  auto& self = const_cast<Impl&>(*this);
  std::optional<io::Checkpoint> checkpoint;
  for (const auto part : kEachPart) {
    if (!has_bits(wanted, part) || has_bits(loaded_parts.load(std::memory_order_relaxed), part)) continue;
    if (!checkpoint) checkpoint.emplace(info.path);
    self.read_part(part, *checkpoint);
    loaded_parts.fetch_or(static_cast<unsigned>(part), std::memory_order_release);
  }
}

std::vector<std::string> Model::Impl::read_part(ModelParts part, const io::Checkpoint& checkpoint) {
  const auto prefixes = part_prefixes(clip_config.has_value(), part);
  check_load_memory(options, info.path, checkpoint, dtype,
                    [&](const std::string& name) { return under_any(name, prefixes); });
  const nn::ParamInit init{dtype, device};
  io::LoadOptions load;
  load.dtype = dtype;
  load.device = device;
  // Built and filled apart, adopted only once complete: a failed read leaves the model as it was.
  io::LoadReport report;
  if (clip_config) {
    models::InternVLClip donor(*clip_config, init, part == ModelParts::kVision, part == ModelParts::kText);
    report = io::load_state_dict(*donor, checkpoint, load);
    donor->eval();
    if (part == ModelParts::kVision) {
      donor->vision_model->set_force_aten(options.force_aten);
      clip->adopt_vision(*donor);
      vision = clip->vision_model;
    } else {
      clip->adopt_text(*donor);
    }
  } else {
    models::InternVLChat donor(*chat_config, init, part == ModelParts::kVision, part == ModelParts::kLanguageModel);
    report = io::load_state_dict(*donor, checkpoint, load);
    donor->eval();
    if (part == ModelParts::kVision) {
      donor->vision_model->set_force_aten(options.force_aten);
      chat->adopt_vision(*donor);
      vision = chat->vision_model;
    } else {
      donor->language_model->set_force_aten(options.force_aten);
      chat->adopt_language_model(*donor);
      if (tokenizer) make_chat_pipeline();
    }
  }
  std::vector<std::string> unused;
  for (auto& name : report.unused) {
    if (under_any(name, prefixes)) unused.push_back(std::move(name));
  }
  return unused;
}

void Model::Impl::make_chat_pipeline() {
  generation::ChatBackend backend;
  backend.tokenizer = tokenizer.get();
  backend.config = &*chat_config;
  backend.model = chat.get();
  const Model::Impl* self = this;
  backend.preprocess = [self](const Image& image, int max_tiles) { return self->preprocess(image, max_tiles); };
  backend.ensure_vision = [self] { self->ensure(ModelParts::kVision); };
  backend.path = info.path;
  backend.device = device;
  backend.dtype = dtype;
  generation::EngineOptions engine;
  engine.max_batch = options.max_batch_size;
  engine.row_exact = device.is_cpu();
  chat_pipeline = std::make_unique<generation::ChatPipeline>(std::move(backend), engine);
}

Model Model::load(const std::string& model, const LoadOptions& options) {
  // A folder, or a Hugging Face id found in the local cache (never downloaded).
  const std::string resolved = io::resolve_model_directory(model);
  const std::string& directory = resolved;
  INTERNVL_CHECK(options.num_threads >= 0, InvalidArgument, "LoadOptions.num_threads must be >= 0, got ",
                 options.num_threads);
  INTERNVL_CHECK(options.max_batch_size > 0, InvalidArgument, "LoadOptions.max_batch_size must be positive, got ",
                 options.max_batch_size);
  INTERNVL_CHECK((static_cast<unsigned>(options.parts) & ~static_cast<unsigned>(ModelParts::kAll)) == 0,
                 InvalidArgument, "LoadOptions.parts has unknown bits: ", static_cast<unsigned>(options.parts));
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
    impl->available_parts = ModelParts::kVision | ModelParts::kText;
  } else {
    impl->chat_config = io::parse_internvl_chat_config(json, config_path);
    vision_config = impl->chat_config->vision;
    info.architecture = "InternVLChatModel";
    info.language_model = impl->chat_config->llm.architecture;
    info.image_size = impl->chat_config->image_size();
    impl->available_parts = ModelParts::kVision | ModelParts::kLanguageModel;
  }
  info.vision_hidden_size = vision_config.hidden_size;
  info.vision_layers = vision_config.num_hidden_layers;
  info.patch_size = vision_config.patch_size;
  info.vision_norm = vision_config.norm_type;

  const io::Checkpoint checkpoint(directory);
  if (impl->chat_config) {
    io::refuse_unknown_chat_modules(checkpoint, directory);
    io::resolve_output_head(impl->chat_config->llm, checkpoint, "language_model.");
  }
  const bool clip = impl->clip_config.has_value();
  const unsigned wanted = static_cast<unsigned>(options.parts) & static_cast<unsigned>(impl->available_parts);
  std::vector<std::string> every_part, deferred;
  for (const auto part : kEachPart) {
    if (!has_bits(static_cast<unsigned>(impl->available_parts), part)) continue;
    const auto prefixes = part_prefixes(clip, part);
    every_part.insert(every_part.end(), prefixes.begin(), prefixes.end());
    if (!has_bits(wanted, part)) deferred.insert(deferred.end(), prefixes.begin(), prefixes.end());
  }
  // One check for everything this call reads: the parts asked for and the tensors of no part.
  check_load_memory(options, directory, checkpoint, impl->dtype,
                    [&](const std::string& name) { return !under_any(name, deferred); });

  // The model starts with no part; each is then read and adopted as a lazy read would be.
  const nn::ParamInit init{impl->dtype, impl->device};
  io::LoadOptions load;
  load.dtype = impl->dtype;
  load.device = impl->device;
  torch::nn::Module* root = nullptr;
  if (clip) {
    impl->clip = models::InternVLClip(*impl->clip_config, init, false, false);
    root = impl->clip.ptr().get();
  } else {
    impl->chat = models::InternVLChat(*impl->chat_config, init, false, false);
    root = impl->chat.ptr().get();
  }
  for (auto& name : io::load_state_dict(*root, checkpoint, load).unused) {
    if (!under_any(name, every_part)) info.unused_weights.push_back(std::move(name));
  }
  root->eval();

  if (tokenizer::Tokenizer::has_tokenizer_files(directory)) {
    impl->tokenizer = std::make_unique<tokenizer::Tokenizer>(directory);
  }
  impl->model_id = make_model_id(info, config_path, checkpoint);
  for (const auto part : kEachPart) {
    if (!has_bits(wanted, part)) continue;
    auto unused = impl->read_part(part, checkpoint);
    info.unused_weights.insert(info.unused_weights.end(), unused.begin(), unused.end());
    impl->loaded_parts.fetch_or(static_cast<unsigned>(part));
  }
  for (const auto& p : root->parameters(true)) info.num_parameters += p.numel();
  for (const auto& name : checkpoint.names()) {
    if (under_any(name, deferred)) info.num_parameters += checkpoint.tensor(name).numel();
  }
  return Model(std::move(impl));
}

namespace torch_adapter {

at::Tensor preprocess(const Model& model, const Image& image) { return model.impl().preprocess(image); }

at::Tensor vision_hidden_state(const Model& model, const at::Tensor& pixel_values, int layer) {
  at::NoGradGuard no_grad;
  auto& impl = model.impl();
  impl.ensure(ModelParts::kVision);
  return impl.vision->hidden_state(pixel_values.to(impl.device, impl.dtype), layer);
}

}  // namespace torch_adapter
}  // namespace internvl
