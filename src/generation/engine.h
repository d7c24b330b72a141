// The batch engine (issue 12): sequences join at the next decode step and leave when they finish,
// each with its own sampling options, seed, stop ids and token callback. A joining sequence is
// prefilled by its own forward; then one forward per step runs over all active sequences
// (CausalLMImpl::forward_decode). KV memory is slot-based: each active sequence owns one slot, a
// cache preallocated to its prompt + max_new_tokens (bounded by the context), released when it
// leaves; at most max_batch slots are in use, later sequences wait in FIFO order.
//
// A single engine thread runs the model; submit() may be called from any thread. Token callbacks
// run on the engine thread and must not block for long (the whole batch waits for them).
#pragma once

#include <ATen/core/Tensor.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "generation/generator.h"
#include "models/decoder.h"

namespace internvl::generation {

struct EngineOptions {
  int max_batch = 8;  // sequences decoded together (> 0)
  // Row-by-row non-matrix operations (see DecoderLayerImpl::forward_decode): results independent
  // of the batch. Default: on for CPU float32, where that independence is exact.
  bool row_exact = true;
};

struct SequenceSpec {
  at::Tensor inputs_embeds;         // [1, L, D] (prompt with image features merged)
  std::vector<int64_t> prompt_ids;  // for the repetition penalty
  GenerateOptions options;
  TokenCallback on_token;           // engine thread; false ends the sequence (kCallback)
  // Engine thread, once, when the sequence ends without an error (before wait() returns); what
  // it throws becomes the sequence's error.
  std::function<void(const GenerateResult&)> on_finish;
  bool keep_logits = false;  // GenerateResult::step_logits (tests: exactness bit for bit)
};

// What a submitter holds: the result once done, and a way to cancel.
class SequenceTicket {
 public:
  // Waits; rethrows what failed the sequence.
  GenerateResult wait();
  bool done() const;
  // Ends the sequence before its next step (StopReason::kCancelled); no effect once done.
  void cancel() { cancelled_ = true; }
  bool cancelled() const { return cancelled_; }

 private:
  friend class Engine;
  void finish(GenerateResult result, std::exception_ptr error);
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  bool done_ = false;
  GenerateResult result_;
  std::exception_ptr error_;
  std::atomic<bool> cancelled_{false};
};

class Engine {
 public:
  Engine(const models::CausalLMImpl& lm, EngineOptions options);
  ~Engine();  // finishes every sequence (queued ones fail with InvalidArgument) and joins the thread
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Validates (InvalidArgument for a prompt + max_new_tokens over the context, bad options) and
  // queues the sequence.
  std::shared_ptr<SequenceTicket> submit(SequenceSpec spec);
  const EngineOptions& options() const { return options_; }

  // Counters for tests and benchmarks.
  struct Stats {
    int64_t decode_steps = 0;  // forwards over the active batch
    int64_t decode_rows = 0;   // sequences summed over those steps
    int64_t max_active = 0;    // the largest batch seen
    double prefill_seconds = 0;  // wall time in prefills (engine thread)
    double decode_seconds = 0;   // wall time in decode steps, sampling included
  };
  Stats stats() const;

 private:
  struct Active;
  void run();
  void admit(std::unique_ptr<Active> sequence);
  void step();
  bool accept(Active& sequence, int64_t token);
  void finish(Active& sequence, StopReason reason, std::exception_ptr error = nullptr);

  const models::CausalLMImpl& lm_;
  EngineOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::unique_ptr<Active>> queue_;
  bool stopping_ = false;
  std::vector<std::unique_ptr<Active>> active_;  // engine thread only
  Stats stats_;
  std::thread thread_;
};

}  // namespace internvl::generation
