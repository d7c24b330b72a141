// Copies between the public Eigen matrices and ATen tensors.
#pragma once

#include <ATen/ATen.h>

#include "internvl/types.h"

namespace internvl {

inline at::Tensor to_tensor(const Matrix& m) {  // [rows, cols] float32 CPU, owned
  return at::from_blob(const_cast<float*>(m.data()), {static_cast<int64_t>(m.rows()), static_cast<int64_t>(m.cols())},
                       at::kFloat)
      .clone();
}

inline Matrix to_matrix(const at::Tensor& t) {  // t: [rows, cols] any device/dtype
  const auto cpu = t.detach().to(at::kCPU, at::kFloat).contiguous();
  Matrix m(cpu.size(0), cpu.size(1));
  if (cpu.numel() > 0) std::memcpy(m.data(), cpu.data_ptr<float>(), sizeof(float) * cpu.numel());
  return m;
}

}  // namespace internvl
