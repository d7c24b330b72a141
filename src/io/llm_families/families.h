// The built-in decoder families, one file each (registered in io/llm_family.cpp).
#pragma once

#include "io/llm_family.h"

namespace internvl::io {

LlmFamily llama_family();      // transformers LlamaForCausalLM (4.37)
LlmFamily internlm2_family();  // official modeling_internlm2.py
LlmFamily qwen2_family();      // transformers Qwen2ForCausalLM (4.37): Qwen2, Qwen2.5
LlmFamily qwen3_family();      // transformers Qwen3ForCausalLM (4.55)

// Qwen2Config / Qwen3Config defaults shared by both families (sizes, context, eps, theta).
void qwen_config_defaults(LlmConfig& config);
// Shared by the families' read_fields: refuses sliding-window attention (Qwen configs).
void refuse_sliding_window(const nlohmann::json& json, const std::string& where);

}  // namespace internvl::io
