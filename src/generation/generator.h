// The decoding loop: prefill once, then one cached step per token; stops on any stop id, on a
// stop string, on max_new_tokens, or when the streaming callback asks to.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <string>
#include <vector>

#include "generation/sampler.h"
#include "models/decoder.h"
#include "tokenizer/tokenizer.h"

namespace internvl::generation {

struct GenerateOptions {
  int64_t max_new_tokens = 512;
  SamplingOptions sampling;
  std::vector<int64_t> stop_ids;  // e.g. the template's <|im_end|> and the tokenizer's eos
};

enum class StopReason { kStopToken, kMaxTokens, kCallback, kCancelled };

struct GenerateResult {
  std::vector<int64_t> tokens;  // new tokens, the stop token included when one ended generation
  StopReason reason = StopReason::kMaxTokens;
  at::Tensor first_logits;      // [V] float32: the logits that chose the first new token
  std::vector<at::Tensor> step_logits;  // the engine's keep_logits: [V] of every chosen token
};

// `on_token(id)` runs after each new token; returning false stops generation.
using TokenCallback = std::function<bool(int64_t token)>;

// inputs_embeds [1, L, D] (prompt, image features merged); prompt_ids the same prompt's ids (for the
// repetition penalty). Throws InvalidArgument when L + max_new_tokens exceeds the model's context.
// A CPU model runs the plain loop. A CUDA model runs the device loop (detail::generate_pipelined):
// greedy selection on the device, one 8-byte copy to the host per token, and the next step queued
// before that copy is waited for; decode steps are CUDA graphs when kernels::cuda_graphs_enabled().
GenerateResult generate(const models::CausalLMImpl& lm, const at::Tensor& inputs_embeds,
                        const std::vector<int64_t>& prompt_ids, const GenerateOptions& options,
                        const TokenCallback& on_token = {});

namespace detail {

enum class DecodeMode {
  kEager,   // CausalLMImpl::forward per step
  kStatic,  // StaticDecodeStep without a graph (the graph's body, run eagerly)
  kGraph,   // StaticDecodeStep captured once and replayed (CUDA only)
};

// The device loop, on any device (tests run it on CPU, where it must pick exactly the tokens of
// the plain loop). When generation stops, the step queued speculatively is discarded.
GenerateResult generate_pipelined(const models::CausalLMImpl& lm, const at::Tensor& inputs_embeds,
                                  const std::vector<int64_t>& prompt_ids, const GenerateOptions& options,
                                  const TokenCallback& on_token, DecodeMode mode);

}  // namespace detail

}  // namespace internvl::generation
