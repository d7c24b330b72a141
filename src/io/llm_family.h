// Decoder families of the chat checkpoints, keyed by `llm_config.architectures[0]`: one spec per
// family (io/llm_families/<family>.cpp) that config parsing, the decoder (models/decoder.cpp),
// loading and inspect all read. Adding a family is a new file there plus one line in
// llm_family.cpp's registry.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <string>
#include <vector>

namespace internvl::io {

struct LlmConfig;

// Official tensor names below `language_model.` (module paths; parameters are `.weight`/`.bias`).
struct LlmTensorNames {
  std::string embed_tokens;  // e.g. "model.embed_tokens"
  std::string final_norm;    // "model.norm"
  std::string layers;        // "model.layers"; layer i is "<layers>.<i>"
  std::string output_head;   // "lm_head" (optional when the embeddings are tied)
  // Per layer.
  std::string attn_norm, ffn_norm;
  std::string attention;                       // "self_attn" | "attention"
  std::string q_proj, k_proj, v_proj, o_proj;  // below `attention` (q/k/v empty when fused)
  std::string wqkv;                            // below `attention`: one fused projection (InternLM2)
  std::string q_norm, k_norm;                  // below `attention`: per-head RMSNorm (Qwen3), when qk_norm
  std::string mlp, gate_proj, up_proj, down_proj;
};

enum class QkvLayout {
  kSeparate,          // q_proj, k_proj, v_proj
  kInternLM2Grouped,  // wqkv rows grouped per kv head: [Hkv, H/Hkv queries + key + value, hd]
};

struct LlmFamily {
  std::string architecture;  // llm_config.architectures[0], e.g. "Qwen2ForCausalLM"
  std::string model_type;    // llm_config.model_type when architectures is absent, e.g. "qwen2"
  std::string official_code; // which official implementation the family reproduces (for docs/inspect)
  LlmTensorNames names;
  QkvLayout qkv_layout = QkvLayout::kSeparate;
  // Whether `rope_scaling` applies (transformers 4.37's Qwen2 ignores it).
  bool reads_rope_scaling = true;
  // Family defaults and family-specific fields of llm_config (bias flags, head_dim, refused
  // features), applied to the generic fields that parse_llm_config reads for every family.
  void (*set_defaults)(LlmConfig& config) = nullptr;
  void (*read_fields)(const nlohmann::json& json, LlmConfig& config, const std::string& where) = nullptr;
  // The official chat() of this family decodes the response with special tokens kept
  // (internvl_chat_gpt_oss, the InternVL3.5 code) instead of skipped (internvl_chat).
  bool chat_keeps_special_tokens = false;
};

// The family of `architecture`; nullptr when none is registered.
const LlmFamily* find_llm_family(const std::string& architecture);
// The architecture registered for `model_type` ("" when none).
std::string llm_architecture_for_model_type(const std::string& model_type);
// Every registered architecture, in registration order.
std::vector<std::string> llm_family_names();

// Language models people ask for that are refused on purpose, with the reason (for errors and docs).
struct RefusedLlm {
  std::string architecture;
  std::string reason;
};
const std::vector<RefusedLlm>& refused_llms();

}  // namespace internvl::io
