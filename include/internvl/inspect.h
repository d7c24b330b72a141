/// @file
/// Checks a downloaded checkpoint folder before use, without loading its weights.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "internvl/options.h"
#include "internvl/types.h"

namespace internvl {

/// Memory a load would take for one dtype and device.
struct MemoryEstimate {
  DType dtype = DType::kFloat32;  ///< compute dtype of the estimate
  Device device = Device::kCPU;   ///< where the weights would live
  uint64_t weight_bytes = 0;    ///< parameters in `dtype`, on `device`
  uint64_t kv_cache_bytes = 0;  ///< chat models: the KV cache at the full context, batch 1
  uint64_t host_peak_bytes = 0; ///< host memory while loading (CPU: everything; CUDA: one tensor in flight)
  uint64_t device_bytes = 0;    ///< CUDA only: weights + KV cache on the GPU (0 on CPU)
};

/// What inspect_checkpoint found. `problems` lists everything that would make Model::load or
/// Model::chat fail; ok() is true when it is empty.
struct CheckpointReport {
  std::string path;            ///< the folder inspected
  bool found = false;          ///< the folder (or id) exists; when false nothing else was read
  std::string architecture;    ///< config.json architectures[0]
  std::string language_model;  ///< QLLaMA / chat LLM architecture
  std::string chat_template;   ///< config.json `template` (chat models)
  bool template_supported = false;  ///< the template is one this library implements
  bool has_tokenizer = false;  ///< tokenizer files present and loadable
  std::string tokenizer;       ///< the tokenizer class reproduced (e.g. "Qwen2Tokenizer"), empty when none

  uint64_t num_parameters = 0;       ///< parameters the library's model of this config has
  uint64_t checkpoint_tensors = 0;   ///< tensors in the safetensors files
  uint64_t checkpoint_elements = 0;  ///< their elements
  uint64_t checkpoint_bytes = 0;     ///< their bytes on disk
  std::map<std::string, uint64_t> checkpoint_dtypes;  ///< "BF16" -> tensor count

  /// Shard files model.safetensors.index.json names that are not in the folder; the counts above
  /// are then those of the shards present, and their tensors are in `missing`.
  std::vector<std::string> missing_shards;
  std::vector<std::string> missing;     ///< keys the model needs that no file holds
  std::vector<std::string> mismatched;  ///< "key: checkpoint [..] vs module [..]"
  std::vector<std::string> unexpected;  ///< keys nothing consumes (e.g. unimplemented heads)
  std::vector<MemoryEstimate> memory;   ///< fp32/bf16/fp16 x cpu/cuda
  std::vector<std::string> problems;    ///< human-readable, one per problem

  bool ok() const { return problems.empty(); }  ///< the folder can be loaded and used
};

/// Reads config.json, every safetensors header (not the data), the tokenizer and the template,
/// and compares the checkpoint's tensors with the ones the model needs. Never throws for a bad
/// folder: every failure becomes an entry of `problems`. `model` is a folder or a Hugging Face id
/// in the local cache, as for Model::load; `path` of the report is the folder read.
CheckpointReport inspect_checkpoint(const std::string& model);

/// What inspect_image found.
struct ImageReport {
  std::string name;     ///< the image's name (the path of a file)
  int width = 0;        ///< decoded size in pixels (0 when it cannot be decoded)
  int height = 0;       ///< decoded size in pixels (0 when it cannot be decoded)
  std::string problem;  ///< why a model would refuse the image (the ImageError text); empty when usable

  bool ok() const { return problem.empty(); }  ///< the image can be used
};

/// Decodes `image` as the models do (same decoder, same pixel limit: pass the model's
/// LoadOptions::max_image_pixels; <= 0 lifts it), to check an image when a user names it rather
/// than when it is first used. Never throws for a bad image: the reason is `problem`.
ImageReport inspect_image(const Image& image, int64_t max_image_pixels = int64_t{2} * 89478485);

}  ///< namespace internvl
