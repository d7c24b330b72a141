// transformers 4.37 Qwen2ForCausalLM (Qwen2 and Qwen2.5: InternVL2-1B, InternVL2.5-1B/4B/38B/78B,
// InternVL3-1B/2B/8B/14B/38B/78B). 4.37 is the version their model cards ask for.
#include "io/config.h"
#include "io/config_read.h"
#include "io/llm_families/families.h"

namespace internvl::io {

void refuse_sliding_window(const json& j, const std::string& where) {
  bool sliding = false;
  read_or(j, "use_sliding_window", sliding, where);
  INTERNVL_CHECK(!sliding, UnsupportedError, where,
                 ": field 'use_sliding_window' is true; sliding-window attention is not supported");
  if (auto it = j.find("layer_types"); it != j.end() && it->is_array()) {
    for (const auto& type : *it) {
      INTERNVL_CHECK(type.is_string() && type.get<std::string>() == "full_attention", UnsupportedError, where,
                     ": field 'layer_types' has ", type.dump(), "; only full_attention layers are supported");
    }
  }
}

void qwen_config_defaults(LlmConfig& c) {
  c.vocab_size = 151936;
  c.hidden_size = 4096;
  c.intermediate_size = 22016;
  c.num_hidden_layers = 32;
  c.num_attention_heads = 32;
  c.max_position_embeddings = 32768;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = 10000.0;
}

LlmFamily qwen2_family() {
  LlmFamily f = llama_family();  // the same tensor names
  f.architecture = "Qwen2ForCausalLM";
  f.model_type = "qwen2";
  f.official_code = "transformers 4.37 Qwen2ForCausalLM";
  // 4.37's Qwen2 builds its rotary embedding without rope_scaling (it matters only past
  // max_position_embeddings): ignore it as the official path does.
  f.reads_rope_scaling = false;
  f.set_defaults = [](LlmConfig& c) {
    qwen_config_defaults(c);  // transformers 4.37 Qwen2Config
    c.qkv_bias = true;  // Qwen2Attention: q/k/v with bias, o_proj without
    c.o_bias = false;
  };
  f.read_fields = [](const json& j, LlmConfig&, const std::string& where) { refuse_sliding_window(j, where); };
  return f;
}

}  // namespace internvl::io
