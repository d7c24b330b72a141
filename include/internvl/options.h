// Options structs of the public API.
#pragma once

#include <string>

#include "internvl/types.h"

namespace internvl {

enum class Device { kCPU, kCUDA };

enum class DType { kFloat32, kBFloat16, kFloat16 };

struct LoadOptions {
  Device device = Device::kCPU;  // where weights live and compute runs
  int device_index = 0;          // CUDA device ordinal (ignored on CPU)
  DType dtype = DType::kFloat32; // compute dtype; checkpoints are converted once on load
  bool force_aten = false;       // use the plain ATen paths even where a CUDA kernel exists (A/B checks)
  int num_threads = 0;           // CPU intra-op threads; 0 keeps LibTorch's default
};

// Options of Model::embed_image / embed_text / retrieve / classify.
struct EmbedOptions {
  EmbedMode mode = EmbedMode::kC;  // InternVL-C or InternVL-G (images; text is the same for both)
  int batch_size = 8;              // inputs per forward pass (> 0)
  bool normalize = false;          // L2-normalise rows (the official encode_* return them unnormalised)
};

const char* to_string(Device device);
const char* to_string(DType dtype);
// Parse "cpu"/"cuda" and "fp32"/"float32"/"bf16"/"bfloat16"/"fp16"/"float16"; throw InvalidArgument.
Device parse_device(const std::string& text);
DType parse_dtype(const std::string& text);

}  // namespace internvl
