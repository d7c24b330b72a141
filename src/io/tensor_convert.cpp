#include "io/tensor_convert.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>

#include <cstdint>
#include <cstring>

#include "common/check.h"

// safetensors data is little-endian and is reinterpreted in place.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "internvl-cpp supports little-endian hosts only");

namespace internvl::io {

c10::ScalarType to_scalar_type(DType dtype) {
  switch (dtype) {
    case DType::BOOL: return c10::kBool;
    case DType::U8: return c10::kByte;
    case DType::I8: return c10::kChar;
    case DType::I16: return c10::kShort;
    case DType::U16: return c10::kUInt16;
    case DType::I32: return c10::kInt;
    case DType::U32: return c10::kUInt32;
    case DType::I64: return c10::kLong;
    case DType::U64: return c10::kUInt64;
    case DType::F16: return c10::kHalf;
    case DType::BF16: return c10::kBFloat16;
    case DType::F32: return c10::kFloat;
    case DType::F64: return c10::kDouble;
    case DType::F8_E4M3: return c10::kFloat8_e4m3fn;
    case DType::F8_E5M2: return c10::kFloat8_e5m2;
  }
  INTERNVL_THROW(CheckpointError, "safetensors dtype ", static_cast<int>(dtype), " has no ATen equivalent");
}

at::Tensor view_as_tensor(const TensorView& view) {
  // from_blob takes a mutable pointer; the mapping is PROT_READ, so writing through the
  // returned tensor faults. Callers treat it as read-only and keep the file alive.
  return at::from_blob(const_cast<std::byte*>(view.data), view.shape,
                       at::TensorOptions().dtype(to_scalar_type(view.dtype)).device(c10::kCPU));
}

at::Tensor to_tensor(const TensorView& view, c10::ScalarType dtype, c10::Device device) {
  const auto src_type = to_scalar_type(view.dtype);
  const auto elem = dtype_size(view.dtype);
  at::Tensor src;
  if (reinterpret_cast<std::uintptr_t>(view.data) % elem != 0) {
    // The format's writer aligns every tensor; a foreign file may not. Copy misaligned bytes into
    // an aligned buffer so no kernel ever reads a misaligned element.
    src = at::empty(view.shape, at::TensorOptions().dtype(src_type));
    if (view.nbytes > 0) std::memcpy(src.data_ptr(), view.data, view.nbytes);
    if (src_type == dtype && device.is_cpu()) return src;
  } else {
    src = view_as_tensor(view);
  }
  if (src_type == dtype && device.is_cpu()) return src.clone();
  if (device.is_cpu()) return src.to(dtype, /*non_blocking=*/false, /*copy=*/true);
  // Cross-device: move the narrower representation, convert on the side that has the wider one.
  if (c10::elementSize(dtype) < elem) {
    return src.to(dtype, /*non_blocking=*/false, /*copy=*/true).to(at::TensorOptions().device(device));
  }
  return src.to(at::TensorOptions().device(device), /*non_blocking=*/false, /*copy=*/true).to(dtype);
}

}  // namespace internvl::io
