// internvl-retrieve: writing float32 matrices as a safetensors file.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "internvl/types.h"

namespace retrieve {

// Writes `tensors` (name, row-major float32 matrix) in the safetensors format: 8-byte
// little-endian header length N, N bytes of JSON {name: {"dtype": "F32", "shape": [rows, cols],
// "data_offsets": [begin, end]}, "__metadata__": {...}} padded with spaces to a multiple of 8,
// then the raw little-endian data. Written atomically (temporary file + fsync + rename).
void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, const internvl::Matrix*>>& tensors,
                       const std::map<std::string, std::string>& metadata);

}  // namespace retrieve
