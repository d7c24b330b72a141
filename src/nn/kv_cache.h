// Per-layer key/value cache for incremental decoding: [batch, kv_heads, capacity, head_dim] buffers
// written in place; grows by doubling when a step would overflow, up to max_length.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

namespace internvl::nn {

class KVCache {
 public:
  KVCache() = default;
  // zero_fill: start the buffers at zero (static decoding attends over whole buffers, masked, and
  // 0 * garbage could be NaN). max_length > 0 bounds the cache (growth stops there and appending
  // past it throws InvalidArgument); 0: unbounded.
  KVCache(int64_t layers, int64_t batch, int64_t kv_heads, int64_t head_dim, int64_t capacity,
          const at::TensorOptions& options, bool zero_fill = false, int64_t max_length = 0);

  bool empty() const { return keys_.empty(); }
  int64_t length() const { return length_; }    // tokens already cached
  int64_t capacity() const { return capacity_; }
  int64_t max_length() const { return max_length_; }
  int64_t layers() const { return static_cast<int64_t>(keys_.size()); }
  int64_t batch() const { return keys_.empty() ? 0 : keys_.front().size(0); }

  // Appends k/v [B, Hkv, L, hd] for `layer` at positions length()..length()+L-1 and returns the
  // views [B, Hkv, length()+L, hd] to attend over. advance(L) after the last layer of a step.
  std::pair<at::Tensor, at::Tensor> append(int64_t layer, const at::Tensor& k, const at::Tensor& v);
  void advance(int64_t tokens) { length_ += tokens; }
  // Static decoding (CUDA graphs): writes one step's k/v [B, Hkv, 1, hd] of `layer` at the
  // position held on the device in `position` (int64 [1]), never reading it on the host and
  // never reallocating; returns the whole buffers [B, Hkv, capacity, hd]. The caller tracks the
  // length (advance(1) per step).
  std::pair<at::Tensor, at::Tensor> write_at(int64_t layer, const at::Tensor& k, const at::Tensor& v,
                                             const at::Tensor& position);
  void reset() { length_ = 0; }
  // Drops cached tokens past `length` (e.g. to reuse a shared prefix).
  void truncate(int64_t length);

 private:
  void grow(int64_t needed);
  std::vector<at::Tensor> keys_, values_;
  int64_t length_ = 0;
  int64_t capacity_ = 0;
  int64_t max_length_ = 0;
};

}  // namespace internvl::nn
