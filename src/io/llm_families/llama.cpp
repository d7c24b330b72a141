// transformers 4.37 LlamaForCausalLM (InternVL-Chat-V1-2 and other LLaMA-based chat checkpoints).
#include "io/config.h"
#include "io/config_read.h"
#include "io/llm_families/families.h"

namespace internvl::io {

LlmFamily llama_family() {
  LlmFamily f;
  f.architecture = "LlamaForCausalLM";
  f.model_type = "llama";
  f.official_code = "transformers 4.37 LlamaForCausalLM";
  f.names.embed_tokens = "model.embed_tokens";
  f.names.final_norm = "model.norm";
  f.names.layers = "model.layers";
  f.names.output_head = "lm_head";
  f.names.attn_norm = "input_layernorm";
  f.names.ffn_norm = "post_attention_layernorm";
  f.names.attention = "self_attn";
  f.names.q_proj = "q_proj";
  f.names.k_proj = "k_proj";
  f.names.v_proj = "v_proj";
  f.names.o_proj = "o_proj";
  f.names.mlp = "mlp";
  f.names.gate_proj = "gate_proj";
  f.names.up_proj = "up_proj";
  f.names.down_proj = "down_proj";
  f.set_defaults = [](LlmConfig&) {};  // LlmConfig's defaults are LlamaConfig's
  f.read_fields = [](const json& j, LlmConfig& c, const std::string& where) {
    // `attention_bias` covers q, k, v and o alike.
    read_or(j, "attention_bias", c.qkv_bias, where);
    c.o_bias = c.qkv_bias;
  };
  return f;
}

}  // namespace internvl::io
