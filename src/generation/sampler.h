// Next-token selection as transformers' generate applies it: repetition penalty over every token
// seen so far (prompt included), then temperature, top-k, top-p; greedy when do_sample is false.
#pragma once

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace internvl::generation {

struct SamplingOptions {
  bool do_sample = false;
  double temperature = 1.0;         // > 0
  int64_t top_k = 0;                // 0 = off
  double top_p = 1.0;               // (0, 1]; 1 = off
  double repetition_penalty = 1.0;  // > 0; 1 = off
  uint64_t seed = 0;
};

// Throws InvalidArgument naming the field when an option is out of range.
void validate(const SamplingOptions& options);

class Sampler {
 public:
  explicit Sampler(const SamplingOptions& options);
  // logits [V] (any float dtype); `seen` = prompt + generated ids. Returns the next token id.
  int64_t next(const at::Tensor& logits, const std::vector<int64_t>& seen);
  // The processed scores before sampling (float32 [V], -inf for removed tokens); for tests.
  at::Tensor process(const at::Tensor& logits, const std::vector<int64_t>& seen) const;

 private:
  SamplingOptions options_;
  at::Generator generator_;
};

// Greedy selection that stays on the logits' device (no host round trip): the repetition penalty
// applied through `seen_mask` (bool [V], true for every id seen; undefined = no penalty), then
// argmax. Returns int64 [1] on that device. On CPU it equals Sampler::next with do_sample false,
// bit for bit (the same float operations element by element).
at::Tensor greedy_token(const at::Tensor& logits, const at::Tensor& seen_mask, double repetition_penalty);
// bool [vocab] on `device`, true at the valid ids of `seen`.
at::Tensor seen_mask(const std::vector<int64_t>& seen, int64_t vocab, const at::Device& device);

}  // namespace internvl::generation
