// Conversion of safetensors views into ATen tensors (the only place io/ meets ATen).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include "io/safetensors.h"

namespace internvl::io {

c10::ScalarType to_scalar_type(DType dtype);  // throws CheckpointError for dtypes ATen lacks

// Zero-copy CPU tensor over the mapped bytes (read-only by contract; lives as long as the file).
at::Tensor view_as_tensor(const TensorView& view);

// Copy converted to dtype and moved to device: one new tensor, never two full copies.
at::Tensor to_tensor(const TensorView& view, c10::ScalarType dtype, c10::Device device = c10::kCPU);

}  // namespace internvl::io
