#include "kernels/cuda_ops.h"

#include <ATen/ATen.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "common/check.h"

#ifdef INTERNVL_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>

#include "kernels/kernel_api.h"
#endif

namespace internvl::kernels {
namespace {

std::atomic<int>& enabled_flag() {
  static std::atomic<int> flag{[] {
    const char* env = std::getenv("INTERNVL_CUDA_KERNELS");
    return env != nullptr && std::strcmp(env, "1") == 0 ? 1 : 0;
  }()};
  return flag;
}

}  // namespace

bool cuda_kernels_built() {
#ifdef INTERNVL_WITH_CUDA
  return true;
#else
  return false;
#endif
}

namespace {
std::atomic<bool>& poison_flag() {
  static std::atomic<bool> flag{false};
  return flag;
}
}  // namespace

void set_poison_outputs(bool poison) { poison_flag().store(poison); }
bool poison_outputs() { return poison_flag().load(); }

bool cuda_kernels_enabled() { return cuda_kernels_built() && enabled_flag().load() != 0; }
void set_cuda_kernels_enabled(bool enabled) { enabled_flag().store(enabled ? 1 : 0); }

bool attention_supported(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, bool has_mask) {
  if (!cuda_kernels_enabled() || has_mask || !q.is_cuda() || q.dim() != 4) return false;
  const auto type = q.scalar_type();
  if ((type != at::kBFloat16 && type != at::kHalf) || k.scalar_type() != type || v.scalar_type() != type) return false;
  const int64_t d = q.size(3);
  if (d != 64 && d != 128) return false;
  if (k.size(1) == 0 || q.size(1) % k.size(1) != 0) return false;
  return q.size(2) != 1 || q.size(1) / k.size(1) <= 8;
}

bool decode_attention_supported(const at::Tensor& q, const at::Tensor& k_cache) {
  if (!cuda_kernels_enabled() || !q.is_cuda() || q.dim() != 3 || k_cache.dim() != 4) return false;
  const auto type = q.scalar_type();
  if ((type != at::kBFloat16 && type != at::kHalf) || k_cache.scalar_type() != type) return false;
  const int64_t d = q.size(2);
  if ((d != 64 && d != 128) || k_cache.size(3) != d) return false;
  return k_cache.size(1) > 0 && q.size(1) % k_cache.size(1) == 0 && q.size(1) / k_cache.size(1) <= 8;
}

bool norm_supported(const at::Tensor& x, const at::Tensor& weight) {
  const auto type = x.scalar_type();
  return cuda_kernels_enabled() && x.is_cuda() && weight.is_cuda() && weight.scalar_type() == type &&
         (type == at::kBFloat16 || type == at::kHalf);
}

#ifdef INTERNVL_WITH_CUDA
namespace {

ElementType element_type(const at::Tensor& t) {
  return t.scalar_type() == at::kBFloat16 ? ElementType::kBFloat16 : ElementType::kFloat16;
}

void check_status(int status, const char* what) {
  INTERNVL_CHECK(status == 0, Error, what, ": CUDA error ", status);
}

void check_inputs(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t q_dims) {
  INTERNVL_CHECK(q.is_cuda() && k.is_cuda() && v.is_cuda(), InvalidArgument, "CUDA attention: tensors must be on CUDA");
  INTERNVL_CHECK(q.dim() == q_dims && k.dim() == q_dims && v.dim() == q_dims, InvalidArgument,
                 "CUDA attention: q, k, v must have ", q_dims, " dimensions");
  const auto type = q.scalar_type();
  INTERNVL_CHECK((type == at::kBFloat16 || type == at::kHalf) && k.scalar_type() == type && v.scalar_type() == type,
                 InvalidArgument, "CUDA attention: q, k, v must all be bf16 or all fp16");
  const int64_t d = q.size(-1);
  INTERNVL_CHECK((d == 64 || d == 128) && k.size(-1) == d && v.size(-1) == d, InvalidArgument,
                 "CUDA attention: head_dim must be 64 or 128, got ", d);
  INTERNVL_CHECK(q.stride(-1) == 1 && k.stride(-1) == 1 && v.stride(-1) == 1, InvalidArgument,
                 "CUDA attention: head_dim must be contiguous");
}

void* current_stream() { return at::cuda::getCurrentCUDAStream().stream(); }

// Every output and workspace the entries allocate; NaN-filled in poison mode (tests), so an
// element a kernel fails to write cannot pass by luck.
at::Tensor new_output(at::IntArrayRef sizes, const at::TensorOptions& options) {
  auto t = at::empty(sizes, options.memory_format(at::MemoryFormat::Contiguous));
  if (poison_outputs()) t.fill_(std::numeric_limits<double>::quiet_NaN());
  return t;
}

}  // namespace

at::Tensor varlen_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& cu_seqlens_q,
                            const at::Tensor& cu_seqlens_k, int64_t max_seqlen_q, bool causal, double scale) {
  check_inputs(q, k, v, 3);
  INTERNVL_CHECK(k.sizes() == v.sizes() && q.size(1) % k.size(1) == 0, InvalidArgument,
                 "varlen_attention: k and v must match and heads must be a multiple of kv heads");
  INTERNVL_CHECK(cu_seqlens_q.scalar_type() == at::kInt && cu_seqlens_k.scalar_type() == at::kInt &&
                     cu_seqlens_q.is_cuda() && cu_seqlens_k.is_cuda() && cu_seqlens_q.numel() == cu_seqlens_k.numel() &&
                     cu_seqlens_q.numel() >= 2,
                 InvalidArgument, "varlen_attention: cu_seqlens must be int32 CUDA tensors of batch + 1 entries");
  // 16-byte vector loads: every row and head stride a multiple of 8 elements.
  for (const auto* t : {&q, &k, &v}) {
    INTERNVL_CHECK(t->stride(0) % 8 == 0 && t->stride(1) % 8 == 0, InvalidArgument,
                   "varlen_attention: token and head strides must be multiples of 8 elements");
  }
  auto o = new_output(q.sizes(), q.options());
  VarlenAttentionParams p{};
  p.q = q.data_ptr();
  p.k = k.data_ptr();
  p.v = v.data_ptr();
  p.o = o.data_ptr();
  p.cu_seqlens_q = cu_seqlens_q.contiguous().data_ptr<int32_t>();
  p.cu_seqlens_k = cu_seqlens_k.contiguous().data_ptr<int32_t>();
  p.q_row_stride = q.stride(0);
  p.k_row_stride = k.stride(0);
  p.v_row_stride = v.stride(0);
  p.o_row_stride = o.stride(0);
  p.q_head_stride = q.stride(1);
  p.k_head_stride = k.stride(1);
  p.v_head_stride = v.stride(1);
  p.o_head_stride = o.stride(1);
  p.batch = static_cast<int>(cu_seqlens_q.numel() - 1);
  p.heads = static_cast<int>(q.size(1));
  p.kv_heads = static_cast<int>(k.size(1));
  p.head_dim = static_cast<int>(q.size(2));
  p.max_seqlen_q = static_cast<int>(max_seqlen_q);
  p.scale = static_cast<float>(scale);
  p.causal = causal;
  p.type = element_type(q);
  check_status(launch_varlen_attention(p, current_stream()), "varlen_attention");
  return o;
}

at::Tensor decode_attention(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                            const at::Tensor& lengths, double scale, int64_t max_length_bound) {
  INTERNVL_CHECK(q.is_cuda() && k_cache.is_cuda() && v_cache.is_cuda() && lengths.is_cuda(), InvalidArgument,
                 "decode_attention: tensors must be on CUDA");
  INTERNVL_CHECK(q.dim() == 3 && k_cache.dim() == 4 && v_cache.sizes() == k_cache.sizes(), InvalidArgument,
                 "decode_attention: q must be [B, H, D] and the caches [B, Hkv, capacity, D]");
  const auto type = q.scalar_type();
  INTERNVL_CHECK((type == at::kBFloat16 || type == at::kHalf) && k_cache.scalar_type() == type &&
                     v_cache.scalar_type() == type,
                 InvalidArgument, "decode_attention: q and caches must all be bf16 or all fp16");
  const int64_t d = q.size(2);
  INTERNVL_CHECK((d == 64 || d == 128) && k_cache.size(3) == d, InvalidArgument,
                 "decode_attention: head_dim must be 64 or 128, got ", d);
  INTERNVL_CHECK(q.stride(2) == 1 && k_cache.stride(3) == 1 && v_cache.stride(3) == 1, InvalidArgument,
                 "decode_attention: head_dim must be contiguous");
  INTERNVL_CHECK(k_cache.size(0) == q.size(0) && q.size(1) % k_cache.size(1) == 0 && q.size(1) / k_cache.size(1) <= 8,
                 InvalidArgument, "decode_attention: batch must match and at most 8 query heads per kv head");
  INTERNVL_CHECK(lengths.scalar_type() == at::kInt && lengths.numel() == q.size(0), InvalidArgument,
                 "decode_attention: lengths must be int32 [batch]");
  int max_length = 0;
  if (max_length_bound < 0) {
    const auto lengths_cpu = lengths.to(at::kCPU);
    max_length = lengths_cpu.numel() ? lengths_cpu.max().item<int>() : 0;
    INTERNVL_CHECK(lengths_cpu.numel() == 0 || (lengths_cpu.min().item<int>() >= 0 && max_length <= k_cache.size(2)),
                   InvalidArgument, "decode_attention: lengths must be within 0..capacity");
  } else {
    INTERNVL_CHECK(max_length_bound <= k_cache.size(2), InvalidArgument, "decode_attention: max_length ",
                   max_length_bound, " exceeds the cache capacity ", k_cache.size(2));
    max_length = static_cast<int>(max_length_bound);
  }
  auto o = new_output({q.size(0), q.size(1), d}, q.options());
  DecodeAttentionParams p{};
  p.q = q.data_ptr();
  p.k = k_cache.data_ptr();
  p.v = v_cache.data_ptr();
  p.o = o.data_ptr();
  const auto lengths_device = lengths.contiguous();
  p.lengths = lengths_device.data_ptr<int32_t>();
  p.q_batch_stride = q.stride(0);
  p.q_head_stride = q.stride(1);
  p.k_batch_stride = k_cache.stride(0);
  p.k_head_stride = k_cache.stride(1);
  p.k_token_stride = k_cache.stride(2);
  p.v_batch_stride = v_cache.stride(0);
  p.v_head_stride = v_cache.stride(1);
  p.v_token_stride = v_cache.stride(2);
  p.o_batch_stride = o.stride(0);
  p.o_head_stride = o.stride(1);
  p.batch = static_cast<int>(q.size(0));
  p.heads = static_cast<int>(q.size(1));
  p.kv_heads = static_cast<int>(k_cache.size(1));
  p.head_dim = static_cast<int>(d);
  p.max_length = max_length;
  p.scale = static_cast<float>(scale);
  p.type = element_type(q);
  p.splits = decode_splits(max_length);
  auto workspace = new_output({decode_workspace_floats(p.batch, p.heads, p.head_dim, p.splits)},
                             q.options().dtype(at::kFloat));
  p.workspace = workspace.data_ptr<float>();
  check_status(launch_decode_attention(p, current_stream()), "decode_attention");
  return o;
}

at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, bool causal, double scale) {
  check_inputs(q, k, v, 4);
  const int64_t batch = q.size(0), heads = q.size(1), lq = q.size(2), lk = k.size(2), d = q.size(3);
  if (lq == 1) {
    const auto lengths = at::full({batch}, static_cast<int>(lk), q.options().dtype(at::kInt));
    // Every length is lk: pass it as the bound so eager decode never waits on the host.
    return decode_attention(q.select(2, 0), k, v, lengths, scale, lk).unsqueeze(2);
  }
  // [B, H, L, D] -> packed [B*L, H, D]
  auto pack = [](const at::Tensor& t) { return t.transpose(1, 2).contiguous().view({-1, t.size(1), t.size(3)}); };
  const auto int_options = q.options().dtype(at::kInt);
  const auto cu_q = at::arange(0, (batch + 1) * lq, lq, int_options);
  const auto cu_k = at::arange(0, (batch + 1) * lk, lk, int_options);
  const auto out = varlen_attention(pack(q), pack(k), pack(v), cu_q, cu_k, lq, causal, scale);
  return out.view({batch, lq, heads, d}).transpose(1, 2);
}

namespace {
void check_norm_inputs(const at::Tensor& x, const at::Tensor& weight) {
  INTERNVL_CHECK(x.is_cuda() && weight.is_cuda(), InvalidArgument, "rms_norm: tensors must be on CUDA");
  const auto type = x.scalar_type();
  INTERNVL_CHECK((type == at::kBFloat16 || type == at::kHalf) && weight.scalar_type() == type, InvalidArgument,
                 "rms_norm: x and weight must both be bf16 or fp16");
  INTERNVL_CHECK(weight.dim() == 1 && x.size(-1) == weight.size(0), InvalidArgument,
                 "rms_norm: weight must be [", x.size(-1), "]");
}
}  // namespace

namespace {
// out = rms_norm(x [+ residual]); the sum goes to residual_out when a residual is given.
void launch_norm(const at::Tensor& x, const at::Tensor* residual, at::Tensor* residual_out, const at::Tensor& weight,
                 at::Tensor& out, double eps, const char* what) {
  RmsNormParams p{};
  p.x = x.data_ptr();
  p.residual = residual ? residual->data_ptr() : nullptr;
  p.residual_out = residual_out ? residual_out->data_ptr() : nullptr;
  p.weight = weight.data_ptr();
  p.out = out.data_ptr();
  p.cols = x.size(-1);
  p.rows = p.cols ? x.numel() / p.cols : 0;
  p.eps = static_cast<float>(eps);
  p.type = element_type(x);
  check_status(launch_rms_norm(p, current_stream()), what);
}
}  // namespace

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  check_norm_inputs(x, weight);
  const auto input = x.contiguous();
  auto out = new_output(input.sizes(), input.options());
  launch_norm(input, nullptr, nullptr, weight.contiguous(), out, eps, "rms_norm");
  return out;
}

std::pair<at::Tensor, at::Tensor> add_rms_norm(const at::Tensor& x, const at::Tensor& residual, const at::Tensor& weight,
                                               double eps) {
  check_norm_inputs(x, weight);
  INTERNVL_CHECK(residual.sizes() == x.sizes() && residual.scalar_type() == x.scalar_type() && residual.is_cuda(),
                 InvalidArgument, "add_rms_norm: residual must match x");
  const auto input = x.contiguous();
  const auto res = residual.contiguous();
  auto out = new_output(input.sizes(), input.options());
  auto sum = new_output(input.sizes(), input.options());
  launch_norm(input, &res, &sum, weight.contiguous(), out, eps, "add_rms_norm");
  return {out, sum};
}

namespace {
void check_layer_norm_inputs(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  INTERNVL_CHECK(x.is_cuda() && weight.is_cuda(), InvalidArgument, "layer_norm: x and weight must be on CUDA");
  const auto type = x.scalar_type();
  INTERNVL_CHECK((type == at::kBFloat16 || type == at::kHalf) && weight.scalar_type() == type, InvalidArgument,
                 "layer_norm: x and weight must both be bf16 or fp16");
  INTERNVL_CHECK(x.dim() >= 1 && weight.dim() == 1 && x.size(-1) == weight.size(0), InvalidArgument,
                 "layer_norm: weight must be [", x.dim() >= 1 ? x.size(-1) : 0, "]");
  if (bias.defined()) {
    INTERNVL_CHECK(bias.is_cuda() && bias.scalar_type() == type && bias.sizes() == weight.sizes(), InvalidArgument,
                   "layer_norm: bias must match weight");
  }
}

void launch_layer(const at::Tensor& x, const at::Tensor* residual, at::Tensor* residual_out, const at::Tensor& weight,
                  const at::Tensor& bias, at::Tensor& out, double eps, const char* what) {
  LayerNormParams p{};
  p.x = x.data_ptr();
  p.residual = residual ? residual->data_ptr() : nullptr;
  p.residual_out = residual_out ? residual_out->data_ptr() : nullptr;
  p.weight = weight.data_ptr();
  p.bias = bias.defined() ? bias.data_ptr() : nullptr;
  p.out = out.data_ptr();
  p.cols = x.size(-1);
  p.rows = p.cols ? x.numel() / p.cols : 0;
  p.eps = static_cast<float>(eps);
  p.type = element_type(x);
  check_status(launch_layer_norm(p, current_stream()), what);
}
}  // namespace

at::Tensor layer_norm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps) {
  check_layer_norm_inputs(x, weight, bias);
  const auto input = x.contiguous();
  auto out = new_output(input.sizes(), input.options());
  const auto b = bias.defined() ? bias.contiguous() : bias;
  launch_layer(input, nullptr, nullptr, weight.contiguous(), b, out, eps, "layer_norm");
  return out;
}

std::pair<at::Tensor, at::Tensor> add_layer_norm(const at::Tensor& x, const at::Tensor& residual,
                                                 const at::Tensor& weight, const at::Tensor& bias, double eps) {
  check_layer_norm_inputs(x, weight, bias);
  INTERNVL_CHECK(residual.sizes() == x.sizes() && residual.scalar_type() == x.scalar_type() && residual.is_cuda(),
                 InvalidArgument, "add_layer_norm: residual must match x");
  const auto input = x.contiguous();
  const auto res = residual.contiguous();
  auto out = new_output(input.sizes(), input.options());
  auto sum = new_output(input.sizes(), input.options());
  const auto b = bias.defined() ? bias.contiguous() : bias;
  launch_layer(input, &res, &sum, weight.contiguous(), b, out, eps, "add_layer_norm");
  return {out, sum};
}

std::pair<at::Tensor, at::Tensor> qk_rms_norm(const at::Tensor& q, const at::Tensor& k, const at::Tensor& q_weight,
                                              const at::Tensor& k_weight, double eps) {
  INTERNVL_CHECK(q.is_cuda() && k.is_cuda() && q_weight.is_cuda() && k_weight.is_cuda(), InvalidArgument,
                 "qk_rms_norm: q, k and the weights must be on CUDA");
  const auto type = q.scalar_type();
  INTERNVL_CHECK((type == at::kBFloat16 || type == at::kHalf) && k.scalar_type() == type &&
                     q_weight.scalar_type() == type && k_weight.scalar_type() == type,
                 InvalidArgument, "qk_rms_norm: q, k and the weights must all be bf16 or all fp16");
  INTERNVL_CHECK(q.dim() >= 1 && q.sizes() == k.sizes(), InvalidArgument, "qk_rms_norm: q ", q.sizes(), " and k ",
                 k.sizes(), " must have the same shape");
  const int64_t cols = q.size(-1);
  INTERNVL_CHECK(q_weight.dim() == 1 && q_weight.size(0) == cols && k_weight.sizes() == q_weight.sizes(),
                 InvalidArgument, "qk_rms_norm: q_weight and k_weight must be [", cols, "]");
  // Rows as a strided 2-D view where possible (no copy of the fused qkv slices).
  auto rows_of = [&](const at::Tensor& t) {
    auto flat = t.stride(-1) == 1 ? t.reshape({-1, cols}) : t.contiguous().view({-1, cols});
    return flat.stride(1) == 1 ? flat : flat.contiguous();
  };
  const auto q2 = rows_of(q), k2 = rows_of(k);
  auto q_out = new_output({q2.size(0), cols}, q.options());
  auto k_out = new_output({k2.size(0), cols}, k.options());
  const auto qw = q_weight.contiguous(), kw = k_weight.contiguous();
  QkNormParams p{};
  p.q = q2.data_ptr();
  p.k = k2.data_ptr();
  p.q_weight = qw.data_ptr();
  p.k_weight = kw.data_ptr();
  p.q_out = q_out.data_ptr();
  p.k_out = k_out.data_ptr();
  p.rows = q2.size(0);
  p.cols = cols;
  p.q_row_stride = q2.stride(0);
  p.k_row_stride = k2.stride(0);
  p.eps = static_cast<float>(eps);
  p.type = element_type(q);
  check_status(launch_qk_rms_norm(p, current_stream()), "qk_rms_norm");
  return {q_out.view(q.sizes()), k_out.view(k.sizes())};
}

#else  // built without CUDA

namespace {
[[noreturn]] void no_cuda(const char* what) {
  INTERNVL_THROW(UnsupportedError, what, ": this build of the library has no CUDA kernels (INTERNVL_WITH_CUDA=OFF)");
}
}  // namespace

at::Tensor varlen_attention(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                            int64_t, bool, double) {
  no_cuda("varlen_attention");
}
at::Tensor decode_attention(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, double, int64_t) {
  no_cuda("decode_attention");
}
at::Tensor attention(const at::Tensor&, const at::Tensor&, const at::Tensor&, bool, double) { no_cuda("attention"); }
at::Tensor rms_norm(const at::Tensor&, const at::Tensor&, double) { no_cuda("rms_norm"); }
std::pair<at::Tensor, at::Tensor> add_rms_norm(const at::Tensor&, const at::Tensor&, const at::Tensor&, double) {
  no_cuda("add_rms_norm");
}
at::Tensor layer_norm(const at::Tensor&, const at::Tensor&, const at::Tensor&, double) { no_cuda("layer_norm"); }
std::pair<at::Tensor, at::Tensor> add_layer_norm(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                 const at::Tensor&, double) {
  no_cuda("add_layer_norm");
}
std::pair<at::Tensor, at::Tensor> qk_rms_norm(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                              const at::Tensor&, double) {
  no_cuda("qk_rms_norm");
}

#endif

}  // namespace internvl::kernels
