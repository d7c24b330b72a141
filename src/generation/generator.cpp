#include "generation/generator.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "common/check.h"

namespace internvl::generation {

GenerateResult generate(const models::CausalLMImpl& lm, const at::Tensor& inputs_embeds,
                        const std::vector<int64_t>& prompt_ids, const GenerateOptions& options,
                        const TokenCallback& on_token) {
  INTERNVL_CHECK(options.max_new_tokens > 0, InvalidArgument, "max_new_tokens must be positive, got ",
                 options.max_new_tokens);
  INTERNVL_CHECK(inputs_embeds.dim() == 3 && inputs_embeds.size(0) == 1 && inputs_embeds.size(1) > 0, InvalidArgument,
                 "generate: inputs_embeds must be [1, tokens, hidden] with at least one token");
  const int64_t prompt_length = inputs_embeds.size(1);
  // Scaled RoPE stretches the trained context by its factor.
  const auto& scaling = lm.config().rope_scaling;
  const auto context = static_cast<int64_t>(lm.config().max_position_embeddings * (scaling ? scaling->factor : 1.0));
  INTERNVL_CHECK(prompt_length + options.max_new_tokens <= context, InvalidArgument,
                 "the prompt (", prompt_length, " tokens) plus max_new_tokens (", options.max_new_tokens,
                 ") exceeds the model's context of ", context, " tokens");
  Sampler sampler(options.sampling);
  at::NoGradGuard no_grad;
  auto cache = lm.make_cache(1, prompt_length + options.max_new_tokens);
  auto logits = lm.logits(lm.forward(inputs_embeds, cache).select(1, -1))[0];
  std::vector<int64_t> seen = prompt_ids;
  GenerateResult result;
  result.first_logits = logits.to(at::kCPU, at::kFloat);
  for (int64_t step = 0; step < options.max_new_tokens; ++step) {
    const int64_t token = sampler.next(logits, seen);
    result.tokens.push_back(token);
    seen.push_back(token);
    if (std::find(options.stop_ids.begin(), options.stop_ids.end(), token) != options.stop_ids.end()) {
      result.reason = StopReason::kStopToken;
      return result;
    }
    if (on_token && !on_token(token)) {
      result.reason = StopReason::kCallback;
      return result;
    }
    if (step + 1 == options.max_new_tokens) break;
    const auto next = lm.embed(at::full({1, 1}, token, at::kLong));
    logits = lm.logits(lm.forward(next, cache).select(1, -1))[0];
  }
  result.reason = StopReason::kMaxTokens;
  return result;
}

}  // namespace internvl::generation
