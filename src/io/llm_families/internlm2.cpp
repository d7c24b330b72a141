// The official InternLM2ForCausalLM (modeling_internlm2.py; InternVL2-2B/8B/26B, InternVL2.5-2B/8B/26B).
#include "io/config.h"
#include "io/config_read.h"
#include "io/llm_families/families.h"

namespace internvl::io {

LlmFamily internlm2_family() {
  LlmFamily f;
  f.architecture = "InternLM2ForCausalLM";
  f.model_type = "internlm2";
  f.official_code = "modeling_internlm2.py (InternLM2ForCausalLM)";
  f.names.embed_tokens = "model.tok_embeddings";
  f.names.final_norm = "model.norm";
  f.names.layers = "model.layers";
  f.names.output_head = "output";
  f.names.attn_norm = "attention_norm";
  f.names.ffn_norm = "ffn_norm";
  f.names.attention = "attention";
  f.names.wqkv = "wqkv";
  f.names.o_proj = "wo";
  f.names.mlp = "feed_forward";
  f.names.gate_proj = "w1";
  f.names.up_proj = "w3";
  f.names.down_proj = "w2";
  f.qkv_layout = QkvLayout::kInternLM2Grouped;
  f.set_defaults = [](LlmConfig& c) {
    // configuration_internlm2.py defaults.
    c.vocab_size = 103168;
    c.rms_norm_eps = 1e-6;
    c.qkv_bias = c.o_bias = true;
    c.bos_token_id = 1;
    c.eos_token_id = 2;
    c.pad_token_id = 0;
  };
  f.read_fields = [](const json& j, LlmConfig& c, const std::string& where) {
    // `bias` covers wqkv and wo.
    read_or(j, "bias", c.qkv_bias, where);
    c.o_bias = c.qkv_bias;
  };
  return f;
}

}  // namespace internvl::io
