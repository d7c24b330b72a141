// Torch-free launchers: pick the instance for dtype x head dim.
#include "kernels/decode_attention.cuh"
#include "kernels/kernel_api.h"
#include "kernels/rms_norm.cuh"
#include "kernels/varlen_attention.cuh"

namespace internvl::kernels {
namespace device {
extern template int run_varlen_attention<__nv_bfloat16, 64>(const VarlenAttentionParams&, cudaStream_t);
extern template int run_varlen_attention<__nv_bfloat16, 128>(const VarlenAttentionParams&, cudaStream_t);
extern template int run_varlen_attention<__half, 64>(const VarlenAttentionParams&, cudaStream_t);
extern template int run_varlen_attention<__half, 128>(const VarlenAttentionParams&, cudaStream_t);
}  // namespace device

int launch_varlen_attention(const VarlenAttentionParams& p, void* stream_ptr) {
  auto stream = static_cast<cudaStream_t>(stream_ptr);
  if (p.max_seqlen_q <= 0 || p.batch <= 0) return 0;
  const bool bf16 = p.type == ElementType::kBFloat16;
  if (p.head_dim == 64) {
    return bf16 ? device::run_varlen_attention<__nv_bfloat16, 64>(p, stream)
                : device::run_varlen_attention<__half, 64>(p, stream);
  }
  if (p.head_dim == 128) {
    return bf16 ? device::run_varlen_attention<__nv_bfloat16, 128>(p, stream)
                : device::run_varlen_attention<__half, 128>(p, stream);
  }
  return static_cast<int>(cudaErrorInvalidValue);
}

int decode_splits(int max_length) {
  // Enough chunks to fill the machine at batch 1, each at least 256 keys.
  const int splits = (max_length + 255) / 256;
  return splits < 1 ? 1 : (splits > 64 ? 64 : splits);
}

int64_t decode_workspace_floats(int batch, int heads, int head_dim, int splits) {
  return static_cast<int64_t>(batch) * heads * splits * device::decode_record_floats(head_dim);
}

int launch_decode_attention(const DecodeAttentionParams& p, void* stream_ptr) {
  auto stream = static_cast<cudaStream_t>(stream_ptr);
  if (p.batch <= 0) return 0;
  if (p.heads % p.kv_heads != 0 || p.heads / p.kv_heads > device::kMaxGroup) return static_cast<int>(cudaErrorInvalidValue);
  const bool bf16 = p.type == ElementType::kBFloat16;
  if (p.head_dim == 64) {
    return bf16 ? device::run_decode_attention<__nv_bfloat16, 64>(p, stream)
                : device::run_decode_attention<__half, 64>(p, stream);
  }
  if (p.head_dim == 128) {
    return bf16 ? device::run_decode_attention<__nv_bfloat16, 128>(p, stream)
                : device::run_decode_attention<__half, 128>(p, stream);
  }
  return static_cast<int>(cudaErrorInvalidValue);
}

int launch_rms_norm(const RmsNormParams& p, void* stream_ptr) {
  auto stream = static_cast<cudaStream_t>(stream_ptr);
  return p.type == ElementType::kBFloat16 ? device::run_rms_norm<__nv_bfloat16>(p, stream)
                                          : device::run_rms_norm<__half>(p, stream);
}

int launch_layer_norm(const LayerNormParams& p, void* stream_ptr) {
  auto stream = static_cast<cudaStream_t>(stream_ptr);
  return p.type == ElementType::kBFloat16 ? device::run_layer_norm<__nv_bfloat16>(p, stream)
                                          : device::run_layer_norm<__half>(p, stream);
}

int launch_qk_rms_norm(const QkNormParams& p, void* stream_ptr) {
  auto stream = static_cast<cudaStream_t>(stream_ptr);
  return p.type == ElementType::kBFloat16 ? device::run_qk_rms_norm<__nv_bfloat16>(p, stream)
                                          : device::run_qk_rms_norm<__half>(p, stream);
}

}  // namespace internvl::kernels
