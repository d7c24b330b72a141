// Per-layer key/value cache for incremental decoding: [batch, kv_heads, capacity, head_dim] buffers
// written in place; grows by doubling when a step would overflow.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

namespace internvl::nn {

class KVCache {
 public:
  KVCache() = default;
  KVCache(int64_t layers, int64_t batch, int64_t kv_heads, int64_t head_dim, int64_t capacity,
          const at::TensorOptions& options);

  bool empty() const { return keys_.empty(); }
  int64_t length() const { return length_; }    // tokens already cached
  int64_t capacity() const { return capacity_; }
  int64_t layers() const { return static_cast<int64_t>(keys_.size()); }

  // Appends k/v [B, Hkv, L, hd] for `layer` at positions length()..length()+L-1 and returns the
  // views [B, Hkv, length()+L, hd] to attend over. advance(L) after the last layer of a step.
  std::pair<at::Tensor, at::Tensor> append(int64_t layer, const at::Tensor& k, const at::Tensor& v);
  void advance(int64_t tokens) { length_ += tokens; }
  void reset() { length_ = 0; }
  // Drops cached tokens past `length` (e.g. to reuse a shared prefix).
  void truncate(int64_t length);

 private:
  void grow(int64_t needed);
  std::vector<at::Tensor> keys_, values_;
  int64_t length_ = 0;
  int64_t capacity_ = 0;
};

}  // namespace internvl::nn
