// Typed model configurations parsed from config.json, with the official defaults
// (configuration_intern_vit.py, configuration_internvl.py, configuration_internvl_chat.py,
// configuration_internlm2.py, transformers' LlamaConfig). Errors name the file and field.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <optional>
#include <string>
#include <vector>

namespace internvl::io {

struct VisionConfig {
  int num_channels = 3;
  int patch_size = 14;
  int image_size = 224;
  bool qkv_bias = false;
  int hidden_size = 3200;
  int num_attention_heads = 25;
  int intermediate_size = 12800;
  bool qk_normalization = true;
  int num_hidden_layers = 48;
  std::string hidden_act = "gelu";
  std::string norm_type = "rms_norm";  // "rms_norm" (InternViT-6B) or "layer_norm" (300M)
  double layer_norm_eps = 1e-6;

  int head_dim() const { return hidden_size / num_attention_heads; }
  int grid_size() const { return image_size / patch_size; }
  int num_positions() const { return grid_size() * grid_size() + 1; }
};

struct RopeScaling {
  std::string type;  // "linear" or "dynamic"
  double factor = 1.0;
};

// A decoder-only LLM: LLaMA (transformers LlamaConfig), QLLaMA, InternLM2, Qwen2, Qwen3. The
// family's spec (io/llm_family.h) sets its defaults and reads its own fields.
struct LlmConfig {
  std::string architecture;  // a registered family, e.g. "LlamaForCausalLM", "Qwen2ForCausalLM"
  int vocab_size = 32000;
  int hidden_size = 4096;
  int intermediate_size = 11008;
  int num_hidden_layers = 32;
  int num_attention_heads = 32;
  int num_key_value_heads = 32;
  int explicit_head_dim = 0;  // config `head_dim` (Qwen3); 0: hidden_size / num_attention_heads
  std::string hidden_act = "silu";
  int max_position_embeddings = 2048;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  std::optional<RopeScaling> rope_scaling;
  bool qkv_bias = false;  // q/k/v (or fused wqkv) projections have a bias
  bool o_bias = false;    // the output projection has a bias
  bool qk_norm = false;   // per-head RMSNorm of q and k before RoPE (Qwen3)
  // The output head is embed_tokens. Model loading resolves it against the checkpoint: a stored
  // head is used; the config's flag ties only when the head is absent (resolve_output_head).
  bool tie_word_embeddings = false;
  int bos_token_id = 1;
  int eos_token_id = 2;
  std::optional<int> pad_token_id;
  // QLLaMA only.
  int num_query_token = 0;
  int cross_attention_frequency = 0;

  int head_dim() const { return explicit_head_dim > 0 ? explicit_head_dim : hidden_size / num_attention_heads; }
};

// InternVL-14B style (architectures ["InternVLModel"]): InternVL-C and InternVL-G.
struct InternVLConfig {
  VisionConfig vision;
  LlmConfig qllama;
  int num_query_token = 96;
  int hidden_size = 3200;
  int clip_embed_dim = 768;
  int attn_pool_num_heads = 16;
  int cross_attention_frequency = 2;
  int max_txt_len = 32;
};

// InternVL-Chat style (architectures ["InternVLChatModel"]).
struct InternVLChatConfig {
  VisionConfig vision;
  LlmConfig llm;
  int select_layer = -1;
  std::string template_name;
  std::string system_message;  // config.json `system_message` when present (overrides the template's)
  double downsample_ratio = 0.5;
  std::string ps_version = "v1";
  bool dynamic_image_size = false;
  bool use_thumbnail = false;
  int min_dynamic_patch = 1;
  int max_dynamic_patch = 6;
  int force_image_size = 0;  // 0: vision.image_size

  int image_size() const { return force_image_size > 0 ? force_image_size : vision.image_size; }
  int num_image_token() const;  // (image_size / patch)^2 * downsample_ratio^2
};

enum class ModelFamily { kInternVL, kInternVLChat };

// Reads and validates `<dir>/config.json` (or a path to a .json file).
nlohmann::json read_config_json(const std::string& path);
ModelFamily detect_family(const nlohmann::json& config, const std::string& source);

class Checkpoint;
// The official output head: a stored `<prefix><output_head>.weight` is used whatever the config
// says; without one the head is tied to the embeddings when `tie_word_embeddings` is set.
// Sets config.tie_word_embeddings to the outcome.
void resolve_output_head(LlmConfig& config, const Checkpoint& checkpoint, const std::string& prefix);

// An InternVL-Chat checkpoint holds vision_model.*, mlp1.* and language_model.* only. Tensors of
// any other top-level module belong to something this library does not implement (the -Flash
// variants' visual resolution router): refused with UnsupportedError naming the first such tensor,
// since ignoring them would silently change the model's answers.
void refuse_unknown_chat_modules(const Checkpoint& checkpoint, const std::string& source);

// `source` names the file in error messages.
VisionConfig parse_vision_config(const nlohmann::json& json, const std::string& source);
LlmConfig parse_llm_config(const nlohmann::json& json, const std::string& source);
InternVLConfig parse_internvl_config(const nlohmann::json& json, const std::string& source);
InternVLChatConfig parse_internvl_chat_config(const nlohmann::json& json, const std::string& source);

}  // namespace internvl::io
