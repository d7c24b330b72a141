// Decoder prefill and decode throughput at real model shapes with random weights.
//   (CPU: prefill is the best of three runs, as in the peer.)
//   decoder_bench --shape internlm2-1.8b|internlm2-7b|qwen2.5-0.5b|qwen2.5-7b --prompt N --new M --dtype fp32|bf16 [--threads T]
//                 [--device cpu|cuda] [--kernels 0|1]
// Prints one JSON line; bench/decoder_peer.py prints the same fields for transformers.
// On CUDA, decode runs through generation::generate (greedy on the device, the pipelined loop, and
// CUDA graphs when --kernels 1), timed as generate(new + 1) minus generate(1), like the peer; the
// JSON also gives the bytes one decode step must read (weights + KV cache) for the roofline.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <utility>
#include <nlohmann/json.hpp>

#include "generation/generator.h"
#include "io/config.h"
#include "kernels/cuda_graph.h"
#include "kernels/cuda_ops.h"
#include "models/decoder.h"
#include "nn/layers.h"
#include "decoder_shapes.h"

namespace {

using bench::shape_config;
using bench::step_bytes;

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int run_cuda(const std::string& shape, const std::string& dtype_name, int prompt, int fresh) {
  const auto dtype = dtype_name == "bf16" ? at::kBFloat16 : at::kFloat;
  const auto config = shape_config(shape);
  internvl::models::CausalLM lm(config, internvl::nn::ParamInit{dtype, at::kCUDA});
  internvl::nn::init_random(*lm, 0);
  at::NoGradGuard no_grad;
  const auto ids = at::randint(config.vocab_size, {1, prompt}, at::kLong);
  const auto embeds = lm->embed(ids);
  internvl::generation::GenerateOptions options;
  auto timed = [&](int64_t new_tokens) {
    options.max_new_tokens = new_tokens;
    const auto t0 = std::chrono::steady_clock::now();
    const auto result = internvl::generation::generate(*lm, embeds, {}, options);  // returns host tokens: synchronised
    return std::make_pair(seconds_since(t0), result.tokens.size());
  };
  timed(8);  // warm-up: cuBLAS handles, allocator, a graph capture
  const double prefill_s = timed(1).first;
  const auto [total_s, produced] = timed(fresh + 1);
  const double decode_s = std::max(total_s - prefill_s, 1e-9);
  const auto [weight_bytes, kv_bytes] = step_bytes(*lm, prompt, fresh);
  std::printf("{\"impl\": \"internvl-cpp\", \"shape\": \"%s\", \"dtype\": \"%s\", \"device\": \"cuda\", "
              "\"kernels\": %d, \"graphs\": %d, \"prompt\": %d, \"new\": %d, \"produced\": %zu, "
              "\"prefill_s\": %.4f, \"prefill_tok_s\": %.1f, \"decode_s\": %.4f, \"decode_tok_s\": %.2f, "
              "\"weight_bytes\": %.6g, \"kv_bytes\": %.6g}\n",
              shape.c_str(), dtype_name.c_str(), internvl::kernels::cuda_kernels_enabled() ? 1 : 0,
              internvl::kernels::cuda_graphs_enabled() ? 1 : 0, prompt, fresh, produced - 1, prefill_s,
              prompt / prefill_s, decode_s, fresh / decode_s, weight_bytes, kv_bytes);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string shape = "internlm2-1.8b", dtype_name = "fp32", device_name = "cpu";
  int prompt = 256, fresh = 32, threads = 0, kernels_on = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i], value = argv[i + 1];
    if (key == "--shape") shape = value;
    else if (key == "--prompt") prompt = std::stoi(value);
    else if (key == "--new") fresh = std::stoi(value);
    else if (key == "--dtype") dtype_name = value;
    else if (key == "--threads") threads = std::stoi(value);
    else if (key == "--device") device_name = value;
    else if (key == "--kernels") kernels_on = std::stoi(value);
  }
  internvl::kernels::set_cuda_kernels_enabled(kernels_on != 0);
  if (device_name == "cuda") return run_cuda(shape, dtype_name, prompt, fresh);
  if (threads > 0) at::set_num_threads(threads);
  const auto dtype = dtype_name == "bf16" ? at::kBFloat16 : at::kFloat;
  const auto config = shape_config(shape);
  internvl::models::CausalLM lm(config, internvl::nn::ParamInit{dtype, at::kCPU});
  internvl::nn::init_random(*lm, 0);
  at::NoGradGuard no_grad;
  const auto ids = at::randint(config.vocab_size, {1, prompt}, at::kLong);
  // Warm-up on a short prompt (allocator, kernels), not timed.
  {
    auto cache = lm->make_cache(1, 16);
    lm->logits(lm->forward(lm->embed(ids.slice(1, 0, 8)), cache).select(1, -1));
  }
  // Prefill: best of three (fresh caches), like the peer; decode continues the last one.
  internvl::nn::KVCache cache;
  at::Tensor logits;
  double prefill_s = 1e30;
  for (int run = 0; run < 3; ++run) {
    cache = lm->make_cache(1, prompt + fresh);
    const auto start = std::chrono::steady_clock::now();
    logits = lm->logits(lm->forward(lm->embed(ids), cache).select(1, -1));
    logits.argmax(-1).item<int64_t>();
    prefill_s = std::min(prefill_s, seconds_since(start));
  }
  auto token = logits.argmax(-1).item<int64_t>();
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < fresh; ++i) {
    logits = lm->logits(lm->forward(lm->embed(at::full({1, 1}, token, at::kLong)), cache).select(1, -1));
    token = logits.argmax(-1).item<int64_t>();
  }
  const double decode_s = seconds_since(t0);
  std::printf("{\"impl\": \"internvl-cpp\", \"shape\": \"%s\", \"dtype\": \"%s\", \"threads\": %d, \"prompt\": %d, "
              "\"new\": %d, \"prefill_s\": %.3f, \"prefill_tok_s\": %.1f, \"decode_s\": %.3f, \"decode_tok_s\": %.2f}\n",
              shape.c_str(), dtype_name.c_str(), at::get_num_threads(), prompt, fresh, prefill_s, prompt / prefill_s,
              decode_s, fresh / decode_s);
  return 0;
}
