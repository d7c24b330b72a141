#include "io/llm_family.h"

#include "io/llm_families/families.h"

namespace internvl::io {
namespace {

const std::vector<LlmFamily>& registry() {
  // One line per family (io/llm_families/<family>.cpp).
  static const std::vector<LlmFamily> families = {
      llama_family(),
      internlm2_family(),
      qwen2_family(),
      qwen3_family(),
  };
  return families;
}

}  // namespace

const LlmFamily* find_llm_family(const std::string& architecture) {
  for (const auto& family : registry()) {
    if (family.architecture == architecture) return &family;
  }
  return nullptr;
}

std::string llm_architecture_for_model_type(const std::string& model_type) {
  for (const auto& family : registry()) {
    if (family.model_type == model_type) return family.architecture;
  }
  return "";
}

std::vector<std::string> llm_family_names() {
  std::vector<std::string> names;
  for (const auto& family : registry()) names.push_back(family.architecture);
  return names;
}

const std::vector<RefusedLlm>& refused_llms() {
  static const std::vector<RefusedLlm> refused = {
      {"Phi3ForCausalLM", "Phi-3 decoder (InternVL2-4B, Mini-InternVL-Chat-4B): fused qkv_proj/gate_up_proj and its "
                          "tokenizer are not implemented"},
      {"InternLM3ForCausalLM", "InternLM3 decoder (InternVL3-9B) is not implemented"},
      {"Qwen3MoeForCausalLM", "Qwen3 mixture-of-experts decoder (InternVL3.5-30B-A3B, -241B-A28B) is not implemented"},
      {"GptOssForCausalLM", "GPT-OSS decoder (InternVL3.5-GPT-OSS-20B-A4B) is not implemented"},
  };
  return refused;
}

}  // namespace internvl::io
