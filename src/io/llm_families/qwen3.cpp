// transformers 4.55 Qwen3ForCausalLM (InternVL3.5-1B...38B), as run by the official
// internvl_chat_gpt_oss code: per-head q_norm/k_norm before RoPE, explicit head_dim, no biases.
#include "io/config.h"
#include "io/config_read.h"
#include "io/llm_families/families.h"

namespace internvl::io {

LlmFamily qwen3_family() {
  LlmFamily f = llama_family();
  f.architecture = "Qwen3ForCausalLM";
  f.model_type = "qwen3";
  f.official_code = "transformers 4.55 Qwen3ForCausalLM (internvl_chat_gpt_oss)";
  f.names.q_norm = "q_norm";
  f.names.k_norm = "k_norm";
  f.chat_keeps_special_tokens = true;  // internvl_chat_gpt_oss decodes with skip_special_tokens=False
  f.set_defaults = [](LlmConfig& c) {
    qwen_config_defaults(c);  // transformers 4.55 Qwen3Config: Qwen2's, plus head_dim 128
    c.explicit_head_dim = 128;
    c.qk_norm = true;
  };
  f.read_fields = [](const json& j, LlmConfig& c, const std::string& where) {
    read_or(j, "head_dim", c.explicit_head_dim, where);
    INTERNVL_CHECK(c.explicit_head_dim > 0 && c.explicit_head_dim % 2 == 0, ConfigError, where,
                   ": field 'head_dim' must be positive and even, got ", c.explicit_head_dim);
    read_or(j, "attention_bias", c.qkv_bias, where);
    c.o_bias = c.qkv_bias;
    refuse_sliding_window(j, where);
  };
  return f;
}

}  // namespace internvl::io
