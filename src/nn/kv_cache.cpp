#include "nn/kv_cache.h"

#include <ATen/ATen.h>

#include "common/check.h"

namespace internvl::nn {

KVCache::KVCache(int64_t layers, int64_t batch, int64_t kv_heads, int64_t head_dim, int64_t capacity,
                 const at::TensorOptions& options, bool zero_fill, int64_t max_length)
    : capacity_(std::max<int64_t>(capacity, 1)), max_length_(max_length) {
  INTERNVL_CHECK(max_length_ >= 0 && (max_length_ == 0 || capacity_ <= max_length_), InvalidArgument,
                 "KVCache: capacity ", capacity_, " exceeds max_length ", max_length_);
  for (int64_t i = 0; i < layers; ++i) {
    for (auto* buffers : {&keys_, &values_}) {
      buffers->push_back(zero_fill ? at::zeros({batch, kv_heads, capacity_, head_dim}, options)
                                   : at::empty({batch, kv_heads, capacity_, head_dim}, options));
    }
  }
}

void KVCache::grow(int64_t needed) {
  int64_t capacity = capacity_;
  while (capacity < needed) capacity *= 2;
  if (max_length_ > 0) capacity = std::min(capacity, max_length_);
  for (auto* buffers : {&keys_, &values_}) {
    for (auto& t : *buffers) {
      auto bigger = at::empty({t.size(0), t.size(1), capacity, t.size(3)}, t.options());
      bigger.slice(2, 0, length_).copy_(t.slice(2, 0, length_));
      t = bigger;
    }
  }
  capacity_ = capacity;
}

std::pair<at::Tensor, at::Tensor> KVCache::append(int64_t layer, const at::Tensor& k, const at::Tensor& v) {
  INTERNVL_CHECK(layer >= 0 && layer < layers(), InvalidArgument, "KVCache: layer ", layer, " out of range");
  const int64_t end = length_ + k.size(2);
  INTERNVL_CHECK(max_length_ == 0 || end <= max_length_, InvalidArgument, "KVCache: ", end,
                 " tokens exceed the cache's bound of ", max_length_, " (the model's context)");
  if (end > capacity_) grow(end);
  keys_[layer].slice(2, length_, end).copy_(k);
  values_[layer].slice(2, length_, end).copy_(v);
  return {keys_[layer].slice(2, 0, end), values_[layer].slice(2, 0, end)};
}

std::pair<at::Tensor, at::Tensor> KVCache::write_at(int64_t layer, const at::Tensor& k, const at::Tensor& v,
                                                    const at::Tensor& position) {
  INTERNVL_CHECK(layer >= 0 && layer < layers(), InvalidArgument, "KVCache: layer ", layer, " out of range");
  INTERNVL_CHECK(k.dim() == 4 && k.size(2) == 1 && k.sizes() == v.sizes(), InvalidArgument,
                 "KVCache::write_at: k and v must be [batch, kv_heads, 1, head_dim]");
  INTERNVL_CHECK(position.dim() == 1 && position.numel() == 1 && position.scalar_type() == at::kLong, InvalidArgument,
                 "KVCache::write_at: position must be an int64 tensor of one element");
  keys_[layer].index_copy_(2, position, k);
  values_[layer].index_copy_(2, position, v);
  return {keys_[layer], values_[layer]};
}

void KVCache::truncate(int64_t length) {
  INTERNVL_CHECK(length >= 0 && length <= length_, InvalidArgument, "KVCache: cannot truncate ", length_, " tokens to ",
                 length);
  length_ = length;
}

}  // namespace internvl::nn
