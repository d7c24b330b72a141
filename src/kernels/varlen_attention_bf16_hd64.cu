// One instance per dtype x head dim keeps the CUDA build parallel.
#include "kernels/varlen_attention.cuh"

namespace internvl::kernels::device {
template int run_varlen_attention<__nv_bfloat16, 64>(const VarlenAttentionParams&, cudaStream_t);
}  // namespace internvl::kernels::device
