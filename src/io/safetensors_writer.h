// safetensors writer (atomic): the counterpart of SafetensorsFile, for embeddings, indexes and dumps.
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace internvl::io {

// Writes `tensors` in the given order (CPU-contiguous copies are made as needed) with string
// metadata under "__metadata__". Supported dtypes: bool, u8, i8, i16, i32, i64, f16, bf16, f32, f64.
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace internvl::io
