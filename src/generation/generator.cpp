#include "generation/generator.h"

#include <ATen/ATen.h>
#include <c10/core/Event.h>
#include <c10/core/impl/VirtualGuardImpl.h>

#include <algorithm>
#include <optional>

#include "common/check.h"
#include "generation/decode_step.h"
#include "kernels/cuda_graph.h"

namespace internvl::generation {
namespace {

void check_request(const models::CausalLMImpl& lm, const at::Tensor& inputs_embeds, const GenerateOptions& options) {
  INTERNVL_CHECK(options.max_new_tokens > 0, InvalidArgument, "max_new_tokens must be positive, got ",
                 options.max_new_tokens);
  INTERNVL_CHECK(inputs_embeds.dim() == 3 && inputs_embeds.size(0) == 1 && inputs_embeds.size(1) > 0, InvalidArgument,
                 "generate: inputs_embeds must be [1, tokens, hidden] with at least one token");
  const int64_t prompt_length = inputs_embeds.size(1);
  // Scaled RoPE stretches the trained context by its factor.
  const int64_t context = lm.context_length();
  INTERNVL_CHECK(prompt_length + options.max_new_tokens <= context, InvalidArgument,
                 "the prompt (", prompt_length, " tokens) plus max_new_tokens (", options.max_new_tokens,
                 ") exceeds the model's context of ", context, " tokens");
}

bool is_stop(const GenerateOptions& options, int64_t token) {
  return std::find(options.stop_ids.begin(), options.stop_ids.end(), token) != options.stop_ids.end();
}

// Records a chosen token; returns true (with result.reason set) when generation ends on it.
bool accept_token(int64_t token, const GenerateOptions& options, const TokenCallback& on_token,
                  std::vector<int64_t>& seen, GenerateResult& result) {
  result.tokens.push_back(token);
  seen.push_back(token);
  if (is_stop(options, token)) {
    result.reason = StopReason::kStopToken;
    return true;
  }
  if (on_token && !on_token(token)) {
    result.reason = StopReason::kCallback;
    return true;
  }
  return false;
}

// The plain loop (CPU): logits to the host, Sampler::next, one forward per token.
GenerateResult generate_host(const models::CausalLMImpl& lm, const at::Tensor& inputs_embeds,
                             const std::vector<int64_t>& prompt_ids, const GenerateOptions& options,
                             const TokenCallback& on_token) {
  const int64_t prompt_length = inputs_embeds.size(1);
  Sampler sampler(options.sampling);
  auto cache = lm.make_cache(1, prompt_length + options.max_new_tokens);
  auto logits = lm.logits(lm.forward(inputs_embeds, cache).select(1, -1))[0];
  std::vector<int64_t> seen = prompt_ids;
  GenerateResult result;
  result.first_logits = logits.to(at::kCPU, at::kFloat);
  for (int64_t step = 0; step < options.max_new_tokens; ++step) {
    const int64_t token = sampler.next(logits, seen);
    if (accept_token(token, options, on_token, seen, result)) return result;
    if (step + 1 == options.max_new_tokens) break;
    const auto next = lm.embed(at::full({1, 1}, token, at::kLong));
    logits = lm.logits(lm.forward(next, cache).select(1, -1))[0];
  }
  result.reason = StopReason::kMaxTokens;
  return result;
}

// Copies a one-element device tensor to the host without waiting for work queued after it: an
// asynchronous copy into pinned memory and an event on the current stream (CUDA); a plain read
// on CPU.
class TokenReader {
 public:
  explicit TokenReader(const at::Device& device) : device_(device) {
    if (!device.is_cpu()) {
      host_ = at::empty({1}, at::TensorOptions().dtype(at::kLong).pinned_memory(true));
      event_.emplace(device.type());
    }
  }
  void start(const at::Tensor& token) {
    if (device_.is_cpu()) {
      value_ = token.item<int64_t>();
      return;
    }
    host_.copy_(token, /*non_blocking=*/true);
    event_->record(c10::impl::VirtualGuardImpl(device_.type()).getStream(device_));
  }
  int64_t wait() {
    if (device_.is_cpu()) return value_;
    event_->synchronize();
    return host_.data_ptr<int64_t>()[0];
  }

 private:
  at::Device device_;
  at::Tensor host_;
  std::optional<c10::Event> event_;
  int64_t value_ = 0;
};

}  // namespace

namespace detail {

GenerateResult generate_pipelined(const models::CausalLMImpl& lm, const at::Tensor& inputs_embeds,
                                  const std::vector<int64_t>& prompt_ids, const GenerateOptions& options,
                                  const TokenCallback& on_token, DecodeMode mode) {
  check_request(lm, inputs_embeds, options);
  at::NoGradGuard no_grad;
  const auto device = lm.embed_weight.device();
  const int64_t prompt_length = inputs_embeds.size(1), vocab = lm.config().vocab_size;
  const auto& sampling = options.sampling;
  Sampler sampler(sampling);
  // Preallocated to the whole request: the static steps write in place and never reallocate.
  auto cache = lm.make_cache(1, prompt_length + options.max_new_tokens, /*zero_fill=*/mode != DecodeMode::kEager);
  auto logits = lm.logits(lm.forward(inputs_embeds.to(device), cache).select(1, -1))[0];
  std::unique_ptr<StaticDecodeStep> static_step;
  if (mode != DecodeMode::kEager) static_step = std::make_unique<StaticDecodeStep>(lm, cache, mode == DecodeMode::kGraph);

  std::vector<int64_t> seen = prompt_ids;
  at::Tensor mask;
  if (!sampling.do_sample && sampling.repetition_penalty != 1.0) mask = seen_mask(seen, vocab, device);
  // The next token as int64 [1] on the device; sampling needs the host (its generator is on CPU).
  auto select = [&](const at::Tensor& step_logits) {
    if (!sampling.do_sample) {
      auto token = greedy_token(step_logits, mask, sampling.repetition_penalty);
      if (mask.defined()) mask.index_fill_(0, token, true);
      return token;
    }
    return at::full({1}, sampler.next(step_logits, seen), at::TensorOptions().dtype(at::kLong).device(device));
  };
  auto forward_step = [&](const at::Tensor& token) {
    if (static_step) return static_step->step(token)[0];
    return lm.logits(lm.forward(lm.embed_unchecked(token.view({1, 1})), cache).select(1, -1))[0];
  };

  GenerateResult result;
  result.first_logits = logits.to(at::kCPU, at::kFloat);
  TokenReader reader(device);
  auto token_device = select(logits);
  for (int64_t step = 0; step < options.max_new_tokens; ++step) {
    reader.start(token_device);
    const bool more = step + 1 < options.max_new_tokens;
    // Queue the next step before waiting for this token: the device stays busy while the host
    // checks stop conditions and streams. Discarded if generation stops here.
    at::Tensor next_logits;
    if (more) next_logits = forward_step(token_device);
    const int64_t token = reader.wait();
    if (accept_token(token, options, on_token, seen, result)) return result;
    if (!more) break;
    token_device = select(next_logits);
  }
  result.reason = StopReason::kMaxTokens;
  return result;
}

}  // namespace detail

GenerateResult generate(const models::CausalLMImpl& lm, const at::Tensor& inputs_embeds,
                        const std::vector<int64_t>& prompt_ids, const GenerateOptions& options,
                        const TokenCallback& on_token) {
  check_request(lm, inputs_embeds, options);
  if (lm.embed_weight.device().is_cpu()) {
    at::NoGradGuard no_grad;
    return generate_host(lm, inputs_embeds, prompt_ids, options, on_token);
  }
  const int64_t total = inputs_embeds.size(1) + options.max_new_tokens;
  const bool graphs = kernels::cuda_graphs_enabled() && lm.embed_weight.device().is_cuda() &&
                      lm.static_decode_supported(total);
  return detail::generate_pipelined(lm, inputs_embeds, prompt_ids, options, on_token,
                                    graphs ? detail::DecodeMode::kGraph : detail::DecodeMode::kEager);
}

}  // namespace internvl::generation
