// Decoder shapes of the benchmarks (random weights, real sizes) and the bytes a decode step reads.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>
#include <nlohmann/json.hpp>

#include "io/config.h"
#include "models/decoder.h"

namespace bench {

inline internvl::io::LlmConfig shape_config(const std::string& shape) {
  if (shape.rfind("qwen2.5-", 0) == 0) {
    // Qwen2.5 shapes (InternVL2.5-1B / InternVL3-1B's and InternVL3-8B's decoders), parsed like a
    // checkpoint's llm_config so the family's defaults (q/k/v biases) apply.
    nlohmann::json j = {{"architectures", {"Qwen2ForCausalLM"}}, {"rms_norm_eps", 1e-6}, {"rope_theta", 1000000.0},
                        {"max_position_embeddings", 32768}, {"vocab_size", 151674}};
    if (shape == "qwen2.5-0.5b") {
      j.update({{"hidden_size", 896}, {"num_attention_heads", 14}, {"num_key_value_heads", 2},
                {"intermediate_size", 4864}, {"num_hidden_layers", 24}, {"tie_word_embeddings", false}});
    } else if (shape == "qwen2.5-7b") {
      j.update({{"hidden_size", 3584}, {"num_attention_heads", 28}, {"num_key_value_heads", 4},
                {"intermediate_size", 18944}, {"num_hidden_layers", 28}, {"tie_word_embeddings", false}});
    } else {
      throw std::invalid_argument("unknown --shape " + shape);
    }
    return internvl::io::parse_llm_config(j, shape);
  }
  internvl::io::LlmConfig c;
  c.architecture = "InternLM2ForCausalLM";
  c.qkv_bias = c.o_bias = false;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 1000000;
  c.max_position_embeddings = 32768;
  if (shape == "internlm2-1.8b") {  // InternVL2-2B's language model
    c.hidden_size = 2048; c.num_attention_heads = 16; c.num_key_value_heads = 8;
    c.intermediate_size = 8192; c.num_hidden_layers = 24; c.vocab_size = 92553;
  } else if (shape == "internlm2-7b") {  // InternVL2-8B's language model
    c.hidden_size = 4096; c.num_attention_heads = 32; c.num_key_value_heads = 8;
    c.intermediate_size = 14336; c.num_hidden_layers = 32; c.vocab_size = 92553;
  } else {
    throw std::invalid_argument("--shape must be internlm2-1.8b, internlm2-7b, qwen2.5-0.5b or qwen2.5-7b");
  }
  return c;
}

inline // Bytes one batch-1 decode step reads: every weight except the embedding table (one row), and the
// KV cache at the mean context of the timed steps.
std::pair<double, double> step_bytes(const internvl::models::CausalLMImpl& lm, int prompt, int fresh) {
  const auto& c = lm.config();
  double weights = 0;
  for (const auto& p : lm.parameters()) weights += static_cast<double>(p.numel()) * p.element_size();
  const double element = lm.embed_weight.element_size();
  weights -= static_cast<double>(c.vocab_size - 1) * c.hidden_size * element;
  if (c.tie_word_embeddings) weights += static_cast<double>(c.vocab_size) * c.hidden_size * element;
  const double mean_context = prompt + fresh / 2.0;
  const double kv = 2.0 * c.num_hidden_layers * c.num_key_value_heads * c.head_dim() * element * mean_context;
  return {weights, kv};
}

}  // namespace bench
