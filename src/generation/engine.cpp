#include "generation/engine.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>

#include "common/check.h"
#include "generation/sampler.h"
#include "kernels/cpu_gemv.h"

namespace internvl::generation {

GenerateResult SequenceTicket::wait() {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [&] { return done_; });
  if (error_) std::rethrow_exception(error_);
  return result_;
}

bool SequenceTicket::done() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return done_;
}

void SequenceTicket::finish(GenerateResult result, std::exception_ptr error) {
  std::lock_guard<std::mutex> lock(mutex_);
  result_ = std::move(result);
  error_ = std::move(error);
  done_ = true;
  changed_.notify_all();
}

struct Engine::Active {
  SequenceSpec spec;
  std::shared_ptr<SequenceTicket> ticket;
  std::unique_ptr<Sampler> sampler;
  std::vector<int64_t> seen;  // prompt + generated (repetition penalty)
  nn::KVCache cache;          // this sequence's slot
  GenerateResult result;
  int64_t next_token = -1;    // chosen, not yet fed to the model
  bool finished = false;
};

Engine::Engine(const models::CausalLMImpl& lm, EngineOptions options) : lm_(lm), options_(options) {
  INTERNVL_CHECK(options_.max_batch > 0, InvalidArgument, "the engine's max_batch must be positive, got ",
                 options_.max_batch);
  thread_ = std::thread([this] { run(); });
}

Engine::~Engine() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

Engine::Stats Engine::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

std::shared_ptr<SequenceTicket> Engine::submit(SequenceSpec spec) {
  const auto& o = spec.options;
  INTERNVL_CHECK(o.max_new_tokens > 0, InvalidArgument, "max_new_tokens must be positive, got ", o.max_new_tokens);
  validate(o.sampling);
  INTERNVL_CHECK(spec.inputs_embeds.defined() && spec.inputs_embeds.dim() == 3 && spec.inputs_embeds.size(0) == 1 &&
                     spec.inputs_embeds.size(1) > 0 && spec.inputs_embeds.size(2) == lm_.config().hidden_size,
                 InvalidArgument, "generate: inputs_embeds must be [1, tokens, ", lm_.config().hidden_size,
                 "] with at least one token");
  const int64_t prompt_length = spec.inputs_embeds.size(1);
  const int64_t context = lm_.context_length();
  INTERNVL_CHECK(prompt_length + o.max_new_tokens <= context, InvalidArgument, "the prompt (", prompt_length,
                 " tokens) plus max_new_tokens (", o.max_new_tokens, ") exceeds the model's context of ", context,
                 " tokens");
  auto sequence = std::make_unique<Active>();
  sequence->spec = std::move(spec);
  sequence->ticket = std::make_shared<SequenceTicket>();
  auto ticket = sequence->ticket;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    INTERNVL_CHECK(!stopping_, InvalidArgument, "the engine is shutting down");
    queue_.push_back(std::move(sequence));
  }
  wake_.notify_all();
  return ticket;
}

void Engine::run() {
  at::NoGradGuard no_grad;
  while (true) {
    std::vector<std::unique_ptr<Active>> joining;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty() || !active_.empty(); });
      if (stopping_) break;
      while (!queue_.empty() && active_.size() + joining.size() < static_cast<size_t>(options_.max_batch)) {
        joining.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    for (auto& sequence : joining) admit(std::move(sequence));
    if (!active_.empty()) step();
  }
  // Shutting down: whatever is left ends now.
  std::deque<std::unique_ptr<Active>> left;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    left.swap(queue_);
  }
  for (auto& sequence : active_) finish(*sequence, StopReason::kCancelled);
  for (auto& sequence : left) {
    sequence->ticket->finish({}, std::make_exception_ptr(InvalidArgument("the engine shut down before the request ran")));
  }
}

void Engine::finish(Active& sequence, StopReason reason, std::exception_ptr error) {
  sequence.finished = true;
  sequence.result.reason = reason;
  sequence.cache = nn::KVCache();  // the slot is free for the next sequence
  if (!error && sequence.spec.on_finish) {
    try {
      sequence.spec.on_finish(sequence.result);
    } catch (...) {
      error = std::current_exception();
    }
  }
  sequence.spec.on_token = nullptr;  // drops what the callbacks hold
  sequence.spec.on_finish = nullptr;
  sequence.ticket->finish(std::move(sequence.result), std::move(error));
}

// Records a chosen token (as generate() does); true when the sequence ends on it.
bool Engine::accept(Active& sequence, int64_t token) {
  auto& result = sequence.result;
  const auto& o = sequence.spec.options;
  result.tokens.push_back(token);
  sequence.seen.push_back(token);
  if (std::find(o.stop_ids.begin(), o.stop_ids.end(), token) != o.stop_ids.end()) {
    finish(sequence, StopReason::kStopToken);
    return true;
  }
  if (sequence.spec.on_token && !sequence.spec.on_token(token)) {
    finish(sequence, StopReason::kCallback);
    return true;
  }
  if (static_cast<int64_t>(result.tokens.size()) >= o.max_new_tokens) {
    finish(sequence, StopReason::kMaxTokens);
    return true;
  }
  sequence.next_token = token;
  return false;
}

void Engine::admit(std::unique_ptr<Active> sequence) {
  auto& s = *sequence;
  if (s.ticket->cancelled()) {
    finish(s, StopReason::kCancelled);
    return;
  }
  try {
    const auto& embeds = s.spec.inputs_embeds;
    const int64_t prompt_length = embeds.size(1);
    s.sampler = std::make_unique<Sampler>(s.spec.options.sampling);
    s.seen = s.spec.prompt_ids;
    const auto start = std::chrono::steady_clock::now();
    s.cache = lm_.make_cache(1, prompt_length + s.spec.options.max_new_tokens);
    const auto logits = lm_.logits(lm_.forward(embeds.to(lm_.embed_weight.device()), s.cache).select(1, -1))[0];
    s.spec.inputs_embeds = at::Tensor();  // not needed any more
    s.result.first_logits = logits.to(at::kCPU, at::kFloat);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stats_.prefill_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
    if (s.spec.keep_logits) s.result.step_logits.push_back(s.result.first_logits.clone());
    if (accept(s, s.sampler->next(logits, s.seen))) return;
  } catch (...) {
    finish(s, StopReason::kCancelled, std::current_exception());
    return;
  }
  active_.push_back(std::move(sequence));
}

void Engine::step() {
  // Cancelled sequences leave before the forward.
  for (auto& sequence : active_) {
    if (sequence->ticket->cancelled()) finish(*sequence, StopReason::kCancelled);
  }
  active_.erase(std::remove_if(active_.begin(), active_.end(), [](const auto& s) { return s->finished; }), active_.end());
  if (active_.empty()) return;
  const auto start = std::chrono::steady_clock::now();
  const auto device = lm_.embed_weight.device();
  const bool row_exact = options_.row_exact;
  // On CPU the GEMV keeps rows independent up to its row limit; larger batches run in groups.
  const size_t group = row_exact && device.is_cpu() ? static_cast<size_t>(kernels::kCpuGemvMaxRows) : active_.size();
  try {
    for (size_t begin = 0; begin < active_.size(); begin += group) {
      const size_t end = std::min(active_.size(), begin + group);
      std::vector<int64_t> tokens;
      std::vector<nn::KVCache*> caches;
      for (size_t i = begin; i < end; ++i) {
        tokens.push_back(active_[i]->next_token);
        caches.push_back(&active_[i]->cache);
      }
      const auto ids = at::tensor(tokens, at::kLong).view({-1, 1}).to(device);
      const auto hidden = lm_.forward_decode(lm_.embed_unchecked(ids), caches, row_exact);
      const auto logits = lm_.logits(hidden.select(1, 0));  // [B, V]
      {
        std::lock_guard<std::mutex> lock(mutex_);
        stats_.decode_steps += 1;
        stats_.decode_rows += static_cast<int64_t>(end - begin);
        stats_.max_active = std::max<int64_t>(stats_.max_active, static_cast<int64_t>(active_.size()));
      }
      for (size_t i = begin; i < end; ++i) {
        auto& s = *active_[i];
        try {
          const auto row = logits[static_cast<int64_t>(i - begin)];
          if (s.spec.keep_logits) s.result.step_logits.push_back(row.to(at::kCPU, at::kFloat).clone());
          accept(s, s.sampler->next(row, s.seen));
        } catch (...) {
          finish(s, StopReason::kCancelled, std::current_exception());
        }
      }
    }
  } catch (...) {
    // A failed forward fails every sequence of the step (it cannot tell whose input broke it).
    const auto error = std::current_exception();
    for (auto& sequence : active_) {
      if (!sequence->finished) finish(*sequence, StopReason::kCancelled, error);
    }
  }
  active_.erase(std::remove_if(active_.begin(), active_.end(), [](const auto& s) { return s->finished; }), active_.end());
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.decode_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace internvl::generation
