// Decode steps with static buffers, optionally replayed as one CUDA graph (issue 5: no host
// round trips in the loop). The token ids and the position live in fixed device tensors, the KV
// cache is preallocated to the whole decode and zero-filled, and every step writes its logits
// into the same buffer, so the first step can be captured and later steps replayed.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>

#include "kernels/cuda_graph.h"
#include "models/decoder.h"
#include "nn/kv_cache.h"

namespace internvl::generation {

class StaticDecodeStep {
 public:
  // `cache` must outlive this object, be made with zero_fill, and keep its capacity; every step
  // appends one token. use_graph needs a CUDA model (else UnsupportedError on the first step).
  StaticDecodeStep(const models::CausalLMImpl& lm, nn::KVCache& cache, bool use_graph);

  // tokens [B] int64 on the model's device (B = the cache's batch) at position cache.length().
  // Returns the logits [B, V] in the model dtype: a buffer that the next step overwrites.
  // Advances the cache by one token.
  at::Tensor step(const at::Tensor& tokens);
  bool graph_captured() const { return graph_ && graph_->captured(); }

 private:
  void run_body();

  const models::CausalLMImpl& lm_;
  nn::KVCache& cache_;
  double rope_base_;
  at::Tensor tokens_;    // [B, 1] int64
  at::Tensor position_;  // [1] int64 = cache length
  at::Tensor logits_;    // [B, V]
  std::unique_ptr<kernels::CudaGraph> graph_;
};

}  // namespace internvl::generation
