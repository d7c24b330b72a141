#include "generation/decode_step.h"

#include <ATen/ATen.h>

#include "common/check.h"

namespace internvl::generation {

StaticDecodeStep::StaticDecodeStep(const models::CausalLMImpl& lm, nn::KVCache& cache, bool use_graph)
    : lm_(lm), cache_(cache), rope_base_(lm.rope_base(cache.capacity())) {
  INTERNVL_CHECK(lm.static_decode_supported(cache.capacity()), UnsupportedError,
                 "static decoding: the RoPE base changes within ", cache.capacity(), " tokens (dynamic scaling)");
  const auto options = lm.embed_weight.options();
  const int64_t batch = cache.batch();
  tokens_ = at::zeros({batch, 1}, options.dtype(at::kLong));
  position_ = at::zeros({1}, options.dtype(at::kLong));
  logits_ = at::empty({batch, lm.config().vocab_size}, options);
  if (use_graph) {
    INTERNVL_CHECK(options.device().is_cuda(), UnsupportedError, "static decoding: CUDA graphs need a CUDA model");
    graph_ = std::make_unique<kernels::CudaGraph>();
  }
}

void StaticDecodeStep::run_body() {
  const auto hidden = lm_.forward_static(lm_.embed_unchecked(tokens_), cache_, position_, rope_base_);
  logits_.copy_(lm_.logits(hidden.select(1, 0)));
}

at::Tensor StaticDecodeStep::step(const at::Tensor& tokens) {
  INTERNVL_CHECK(tokens.numel() == tokens_.size(0) && tokens.scalar_type() == at::kLong &&
                     tokens.device() == tokens_.device(),
                 InvalidArgument, "StaticDecodeStep: tokens must be int64 [", tokens_.size(0), "] on the model's device");
  INTERNVL_CHECK(cache_.length() < cache_.capacity(), InvalidArgument, "StaticDecodeStep: the KV cache is full (",
                 cache_.capacity(), " tokens)");
  tokens_.copy_(tokens.view({-1, 1}));
  position_.fill_(cache_.length());
  if (!graph_) {
    run_body();
  } else if (!graph_->captured()) {
    graph_->warm_up_and_capture([this] { run_body(); });  // the warm-up run is this step
  } else {
    graph_->replay();
  }
  cache_.advance(1);
  return logits_;
}

}  // namespace internvl::generation
