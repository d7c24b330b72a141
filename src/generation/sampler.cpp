#include "generation/sampler.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <limits>

#include "common/check.h"

namespace internvl::generation {

void validate(const SamplingOptions& o) {
  INTERNVL_CHECK(std::isfinite(o.temperature) && o.temperature > 0, InvalidArgument,
                 "temperature must be positive, got ", o.temperature);
  INTERNVL_CHECK(o.top_k >= 0, InvalidArgument, "top_k must be >= 0, got ", o.top_k);
  INTERNVL_CHECK(o.top_p > 0 && o.top_p <= 1, InvalidArgument, "top_p must be in (0, 1], got ", o.top_p);
  INTERNVL_CHECK(std::isfinite(o.repetition_penalty) && o.repetition_penalty > 0, InvalidArgument,
                 "repetition_penalty must be positive, got ", o.repetition_penalty);
}

Sampler::Sampler(const SamplingOptions& options)
    : options_(options), generator_(at::make_generator<at::CPUGeneratorImpl>(options.seed)) {
  validate(options_);
}

at::Tensor Sampler::process(const at::Tensor& logits, const std::vector<int64_t>& seen) const {
  auto scores = logits.detach().to(at::kCPU, at::kFloat).flatten().clone();
  const int64_t vocab = scores.size(0);
  if (options_.repetition_penalty != 1.0 && !seen.empty()) {
    std::vector<int64_t> valid;
    for (const auto id : seen) {
      if (id >= 0 && id < vocab) valid.push_back(id);
    }
    const auto index = at::tensor(valid, at::kLong);
    const auto picked = scores.index_select(0, index);
    const auto penalised = at::where(picked < 0, picked * options_.repetition_penalty, picked / options_.repetition_penalty);
    scores.index_put_({index}, penalised);
  }
  if (!options_.do_sample) return scores;
  const float neg_inf = -std::numeric_limits<float>::infinity();
  if (options_.temperature != 1.0) scores = scores / options_.temperature;
  if (options_.top_k > 0 && options_.top_k < vocab) {
    const auto kth = std::get<0>(scores.topk(options_.top_k)).min();
    scores = scores.masked_fill(scores < kth, neg_inf);
  }
  if (options_.top_p < 1.0) {
    // Keep the smallest set of most likely tokens whose probability reaches top_p (at least one).
    const auto [sorted, order] = scores.sort(/*dim=*/0, /*descending=*/false);
    const auto cumulative = sorted.softmax(0).cumsum(0);
    auto remove_sorted = cumulative <= (1.0 - options_.top_p);
    remove_sorted[vocab - 1] = false;
    const auto remove = at::zeros_like(remove_sorted).scatter(0, order, remove_sorted);
    scores = scores.masked_fill(remove, neg_inf);
  }
  return scores;
}

int64_t Sampler::next(const at::Tensor& logits, const std::vector<int64_t>& seen) {
  const auto scores = process(logits, seen);
  if (!options_.do_sample) return scores.argmax().item<int64_t>();
  const auto probs = scores.softmax(0);
  return at::multinomial(probs, 1, /*replacement=*/false, generator_).item<int64_t>();
}

at::Tensor greedy_token(const at::Tensor& logits, const at::Tensor& seen_mask, double repetition_penalty) {
  auto scores = logits.detach().to(at::kFloat).flatten();
  if (repetition_penalty != 1.0 && seen_mask.defined()) {
    INTERNVL_CHECK(seen_mask.numel() == scores.numel() && seen_mask.scalar_type() == at::kBool, InvalidArgument,
                   "greedy_token: seen_mask must be bool [", scores.numel(), "]");
    const auto penalised = at::where(scores < 0, scores * repetition_penalty, scores / repetition_penalty);
    scores = at::where(seen_mask, penalised, scores);
  }
  return scores.argmax().view({1});
}

at::Tensor seen_mask(const std::vector<int64_t>& seen, int64_t vocab, const at::Device& device) {
  std::vector<int64_t> valid;
  for (const auto id : seen) {
    if (id >= 0 && id < vocab) valid.push_back(id);
  }
  auto mask = at::zeros({vocab}, at::TensorOptions().dtype(at::kBool).device(device));
  if (!valid.empty()) mask.index_fill_(0, at::tensor(valid, at::kLong).to(device), true);
  return mask;
}

}  // namespace internvl::generation
