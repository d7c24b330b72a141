// Aggregate decode throughput of the batch engine (issue 12): R greedy requests decoded together
// vs the same requests one after another, on a real decoder shape with random weights, in one
// run. Also the roofline: bytes one step reads over the memory bandwidth measured here.
//   batch_decode_bench --shape qwen2.5-0.5b --requests 4,8 --new 16 [--threads 2] [--row-exact 0|1]
// Prints one JSON line per request count.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "decoder_shapes.h"
#include "generation/engine.h"
#include "nn/layers.h"

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Read bandwidth: the best of a few sums over a buffer far larger than the caches.
double measure_bandwidth() {
  const auto buffer = at::rand({int64_t{256} << 20}, at::kFloat);  // 1 GiB
  double best = 0;
  for (int run = 0; run < 4; ++run) {
    const auto t0 = std::chrono::steady_clock::now();
    buffer.sum().item<float>();
    best = std::max(best, buffer.numel() * 4.0 / seconds_since(t0));
  }
  return best;
}

struct Run {
  double decode_s = 0;
  int64_t decode_tokens = 0;
  int64_t max_active = 0;
};

Run run(const internvl::models::CausalLMImpl& lm, const std::vector<internvl::generation::SequenceSpec>& specs,
        int max_batch, bool row_exact, bool together) {
  internvl::generation::EngineOptions options;
  options.max_batch = max_batch;
  options.row_exact = row_exact;
  internvl::generation::Engine engine(lm, options);
  Run r;
  if (together) {
    std::vector<std::shared_ptr<internvl::generation::SequenceTicket>> tickets;
    for (const auto& spec : specs) tickets.push_back(engine.submit(spec));
    for (auto& t : tickets) r.decode_tokens += static_cast<int64_t>(t->wait().tokens.size()) - 1;
  } else {
    for (const auto& spec : specs) r.decode_tokens += static_cast<int64_t>(engine.submit(spec)->wait().tokens.size()) - 1;
  }
  r.decode_s = engine.stats().decode_seconds;
  r.max_active = engine.stats().max_active;
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  std::string shape = "qwen2.5-0.5b", counts = "4,8";
  int fresh = 16, threads = 0, row_exact = 1, prompt_min = 32, prompt_max = 96;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i], value = argv[i + 1];
    if (key == "--shape") shape = value;
    else if (key == "--requests") counts = value;
    else if (key == "--new") fresh = std::stoi(value);
    else if (key == "--threads") threads = std::stoi(value);
    else if (key == "--row-exact") row_exact = std::stoi(value);
    else if (key == "--prompt-min") prompt_min = std::stoi(value);
    else if (key == "--prompt-max") prompt_max = std::stoi(value);
  }
  if (threads > 0) at::set_num_threads(threads);
  const auto config = bench::shape_config(shape);
  internvl::models::CausalLM lm(config, internvl::nn::ParamInit{at::kFloat, at::kCPU});
  internvl::nn::init_random(*lm, 0);
  at::NoGradGuard no_grad;
  const double bandwidth = measure_bandwidth();
  std::vector<int> request_counts;
  std::stringstream list(counts);
  for (std::string item; std::getline(list, item, ',');) request_counts.push_back(std::stoi(item));
  std::mt19937 rng(3);
  for (const int requests : request_counts) {
    std::vector<internvl::generation::SequenceSpec> specs;
    int64_t prompt_total = 0;
    for (int i = 0; i < requests; ++i) {
      internvl::generation::SequenceSpec spec;
      const int length = std::uniform_int_distribution<int>(prompt_min, prompt_max)(rng);
      prompt_total += length;
      for (int t = 0; t < length; ++t) spec.prompt_ids.push_back(static_cast<int64_t>(rng() % config.vocab_size));
      spec.inputs_embeds = lm->embed(at::tensor(spec.prompt_ids, at::kLong).view({1, -1}));
      spec.options.max_new_tokens = fresh;  // random weights rarely emit a stop id; none is set
      specs.push_back(spec);
    }
    run(*lm, {specs.front()}, 1, row_exact != 0, false);  // warm-up
    const auto sequential = run(*lm, specs, 1, row_exact != 0, false);
    const auto batched = run(*lm, specs, requests, row_exact != 0, true);
    const auto [weight_bytes, kv_bytes] =
        bench::step_bytes(*lm, static_cast<int>(prompt_total / requests), fresh);
    // One batched step reads the weights once and every sequence's cache.
    const double roofline_sequential = bandwidth / (weight_bytes + kv_bytes);
    const double roofline_batched = requests * bandwidth / (weight_bytes + requests * kv_bytes);
    const double seq_tok_s = sequential.decode_tokens / sequential.decode_s;
    const double batch_tok_s = batched.decode_tokens / batched.decode_s;
    std::printf("{\"shape\": \"%s\", \"threads\": %d, \"row_exact\": %d, \"requests\": %d, \"new\": %d, "
                "\"sequential_tok_s\": %.2f, \"batched_tok_s\": %.2f, \"ratio\": %.2f, \"max_active\": %lld, "
                "\"bandwidth_gb_s\": %.1f, \"step_weight_gb\": %.3f, \"roofline_sequential_tok_s\": %.2f, "
                "\"roofline_batched_tok_s\": %.2f}\n",
                shape.c_str(), at::get_num_threads(), row_exact, requests, fresh, seq_tok_s, batch_tok_s,
                batch_tok_s / seq_tok_s, static_cast<long long>(batched.max_active), bandwidth / 1e9,
                weight_bytes / 1e9, roofline_sequential, roofline_batched);
    std::fflush(stdout);
  }
  return 0;
}
