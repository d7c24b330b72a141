#include "internvl/inspect.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>

#include "internvl/error.h"
#include "io/config.h"
#include "io/hf_cache.h"
#include "io/safetensors.h"
#include "io/state_dict.h"
#include "models/internvl_chat.h"
#include "models/internvl_clip.h"
#include "preprocess/image.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace fs = std::filesystem;

namespace internvl {

namespace {

uint64_t dtype_bytes(DType dtype) { return dtype == DType::kFloat32 ? 4 : 2; }

// Builds the model of `json` on the meta device: names and shapes without any memory.
std::shared_ptr<torch::nn::Module> build_meta_model(io::ModelFamily family, const nlohmann::json& json,
                                                    const std::string& config_path,
                                                    std::optional<io::LlmConfig>& chat_llm,
                                                    const std::optional<io::Checkpoint>& checkpoint,
                                                    CheckpointReport& report) {
  const nn::ParamInit init{c10::kFloat, c10::Device(c10::kMeta)};
  if (family == io::ModelFamily::kInternVL) {
    const auto config = io::parse_internvl_config(json, config_path);
    report.language_model = config.qllama.architecture;
    return models::InternVLClip(config, init).ptr();
  }
  auto config = io::parse_internvl_chat_config(json, config_path);
  // The same output-head decision as Model::load (a stored head wins over the tie flag).
  if (checkpoint) {
    try {
      io::refuse_unknown_chat_modules(*checkpoint, config_path);
    } catch (const Error& e) {
      report.problems.push_back(e.what());
    }
    io::resolve_output_head(config.llm, *checkpoint, "language_model.");
  }
  report.language_model = config.llm.architecture;
  report.chat_template = config.template_name;
  const auto names = tokenizer::conversation_template_names();
  report.template_supported = std::find(names.begin(), names.end(), config.template_name) != names.end();
  if (!report.template_supported) {
    report.problems.push_back("config.json template '" + config.template_name + "' is not implemented");
  }
  chat_llm = config.llm;
  return models::InternVLChat(config, init).ptr();
}

void add_memory_estimates(CheckpointReport& report, const std::optional<io::LlmConfig>& chat_llm,
                          uint64_t largest_parameter) {
  for (DType dtype : {DType::kFloat32, DType::kBFloat16, DType::kFloat16}) {
    const uint64_t bytes = dtype_bytes(dtype);
    const uint64_t weights = report.num_parameters * bytes;
    uint64_t kv = 0;
    if (chat_llm) {
      const auto& llm = *chat_llm;
      kv = 2ull * llm.num_hidden_layers * llm.num_key_value_heads * llm.head_dim() *
           static_cast<uint64_t>(llm.max_position_embeddings) * bytes;
    }
    // Loading converts one tensor at a time (float32 staging at most) from the mapped files.
    const uint64_t in_flight = largest_parameter * (4 + bytes);
    for (Device device : {Device::kCPU, Device::kCUDA}) {
      MemoryEstimate m;
      m.dtype = dtype;
      m.device = device;
      m.weight_bytes = weights;
      m.kv_cache_bytes = kv;
      m.host_peak_bytes = device == Device::kCPU ? weights + kv + in_flight : in_flight;
      m.device_bytes = device == Device::kCUDA ? weights + kv : 0;
      report.memory.push_back(m);
    }
  }
}

}  // namespace

CheckpointReport inspect_checkpoint(const std::string& model_argument) {
  CheckpointReport report;
  report.path = model_argument;
  std::string directory;
  try {
    directory = io::resolve_model_directory(model_argument);  // a folder, or an id in the local HF cache
  } catch (const Error& e) {
    report.problems.push_back(e.what());
    return report;
  }
  report.path = directory;
  report.found = true;
  const std::string config_path = (fs::path(directory) / "config.json").string();

  std::optional<io::Checkpoint> checkpoint;
  try {
    // A missing shard is reported by name; the shards present are still counted and checked.
    checkpoint.emplace(directory, &report.missing_shards);
    for (const auto& shard : report.missing_shards) {
      report.problems.push_back("shard " + shard + " is missing: " + (fs::path(directory) / shard).string() +
                                " is named in model.safetensors.index.json but not there");
    }
    for (const auto& name : checkpoint->names()) {
      const auto& view = checkpoint->tensor(name);
      report.checkpoint_tensors += 1;
      report.checkpoint_elements += static_cast<uint64_t>(view.numel());
      report.checkpoint_bytes += view.nbytes;
      report.checkpoint_dtypes[io::dtype_name(view.dtype)] += 1;
    }
  } catch (const Error& e) {
    report.problems.push_back(e.what());
    checkpoint.reset();
  }

  std::optional<io::LlmConfig> chat_llm;
  std::shared_ptr<torch::nn::Module> model;
  try {
    const auto json = io::read_config_json(config_path);
    if (json.contains("architectures") && json["architectures"].is_array() && !json["architectures"].empty() &&
        json["architectures"][0].is_string()) {
      report.architecture = json["architectures"][0].get<std::string>();
    }
    model = build_meta_model(io::detect_family(json, config_path), json, config_path, chat_llm, checkpoint, report);
  } catch (const Error& e) {
    report.problems.push_back(e.what());
  }

  if (model) {
    uint64_t largest_parameter = 0;
    for (const auto& p : model->parameters(/*recurse=*/true)) {
      report.num_parameters += p.numel();
      largest_parameter = std::max<uint64_t>(largest_parameter, p.numel());
    }
    add_memory_estimates(report, chat_llm, largest_parameter);
    if (checkpoint) {
      const auto check = io::check_state_dict(*model, *checkpoint);
      report.missing = check.missing;
      report.mismatched = check.mismatched;
      report.unexpected = check.unused;
      if (!check.missing.empty()) {
        report.problems.push_back(std::to_string(check.missing.size()) + " tensor(s) missing, first: " +
                                  check.missing.front());
      }
      if (!check.mismatched.empty()) {
        report.problems.push_back(std::to_string(check.mismatched.size()) + " tensor(s) mismatched, first: " +
                                  check.mismatched.front());
      }
    }
  }

  if (tokenizer::Tokenizer::has_tokenizer_files(directory)) {
    try {
      tokenizer::Tokenizer tok(directory);
      report.has_tokenizer = true;
      report.tokenizer = tokenizer::to_string(tok.flavour());
    } catch (const Error& e) {
      report.problems.push_back(e.what());
    }
  } else if (!report.architecture.empty()) {
    // Both families tokenize text (retrieval captions, chat prompts).
    report.problems.push_back("no tokenizer in '" + directory +
                              "' (tokenizer.model, vocab.json + merges.txt, or tokenizer.json)");
  }
  return report;
}

ImageReport inspect_image(const Image& image, int64_t max_image_pixels) {
  ImageReport report;
  report.name = image.name();
  try {
    preprocess::RgbImage rgb;
    switch (image.kind()) {
      case Image::Kind::kBytes:
        rgb = preprocess::decode_bytes(image.data().data(), image.data().size(), image.name(), max_image_pixels);
        break;
      case Image::Kind::kRgb:
        if (max_image_pixels > 0 && int64_t{image.width()} * image.height() > max_image_pixels) {
          throw ImageError(image.name() + ": image too large (at most " + std::to_string(max_image_pixels) +
                           " pixels allowed)");
        }
        rgb.width = image.width();
        rgb.height = image.height();
        break;
      case Image::Kind::kFile: rgb = preprocess::decode_file(image.name(), max_image_pixels); break;
    }
    report.width = rgb.width;
    report.height = rgb.height;
  } catch (const std::exception& e) {  // ImageError; bad_alloc for a huge image with the limit lifted
    report.problem = e.what();
  }
  return report;
}

}  // namespace internvl
