#include "io/config.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <type_traits>
#include <nlohmann/json.hpp>

#include "common/check.h"
#include "io/config_read.h"
#include "io/llm_family.h"
#include "io/safetensors.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace internvl::io {
namespace {

void require_positive(int value, const char* key, const std::string& where) {
  INTERNVL_CHECK(value > 0, ConfigError, where, ": field '", key, "' must be positive, got ", value);
}

void require_divides(int divisor, int value, const char* what, const std::string& where) {
  INTERNVL_CHECK(value % divisor == 0, ConfigError, where, ": ", what, " (", value, " by ", divisor,
                 ") is not whole");
}

const json& object_field(const json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  INTERNVL_CHECK(it != j.end() && it->is_object(), ConfigError, where, ": missing object field '", key, "'");
  return *it;
}

std::string first_architecture(const json& j) {
  auto it = j.find("architectures");
  if (it == j.end() || !it->is_array() || it->empty() || !(*it)[0].is_string()) return "";
  return (*it)[0].get<std::string>();
}

constexpr int kMaxImageSize = 16384;

}  // namespace

json read_config_json(const std::string& path) {
  fs::path file = path;
  if (fs::is_directory(file)) file /= "config.json";
  std::ifstream in(file);
  INTERNVL_CHECK(in.good(), ConfigError, "cannot open config file ", file.string());
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    INTERNVL_THROW(ConfigError, file.string(), ": malformed JSON (", e.what(), ")");
  }
  INTERNVL_CHECK(j.is_object(), ConfigError, file.string(), ": top level is not a JSON object");
  return j;
}

ModelFamily detect_family(const json& config, const std::string& source) {
  const std::string arch = first_architecture(config);
  std::string model_type;
  read_or(config, "model_type", model_type, source);
  if (arch == "InternVLModel" || (arch.empty() && model_type == "internvl")) return ModelFamily::kInternVL;
  if (arch == "InternVLChatModel" || (arch.empty() && model_type == "internvl_chat")) {
    return ModelFamily::kInternVLChat;
  }
  INTERNVL_THROW(ConfigError, source, ": field 'architectures' = '", arch,
                 "' is not a supported model (InternVLModel, InternVLChatModel)");
}

VisionConfig parse_vision_config(const json& j, const std::string& source) {
  const std::string where = source + " vision_config";
  VisionConfig c;
  read_or(j, "num_channels", c.num_channels, where);
  read_or(j, "patch_size", c.patch_size, where);
  read_or(j, "image_size", c.image_size, where);
  read_or(j, "qkv_bias", c.qkv_bias, where);
  read_or(j, "hidden_size", c.hidden_size, where);
  read_or(j, "num_attention_heads", c.num_attention_heads, where);
  read_or(j, "intermediate_size", c.intermediate_size, where);
  read_or(j, "qk_normalization", c.qk_normalization, where);
  read_or(j, "num_hidden_layers", c.num_hidden_layers, where);
  read_or(j, "hidden_act", c.hidden_act, where);
  read_or(j, "norm_type", c.norm_type, where);
  read_or(j, "layer_norm_eps", c.layer_norm_eps, where);
  for (auto [value, key] : {std::pair{c.num_channels, "num_channels"}, {c.patch_size, "patch_size"},
                            {c.image_size, "image_size"}, {c.hidden_size, "hidden_size"},
                            {c.num_attention_heads, "num_attention_heads"},
                            {c.intermediate_size, "intermediate_size"},
                            {c.num_hidden_layers, "num_hidden_layers"}}) {
    require_positive(value, key, where);
  }
  require_divides(c.num_attention_heads, c.hidden_size, "hidden_size / num_attention_heads", where);
  require_divides(c.patch_size, c.image_size, "image_size / patch_size", where);
  // Far beyond any InternViT (224/448); keeps patch-grid arithmetic well inside int.
  INTERNVL_CHECK(c.image_size <= kMaxImageSize, ConfigError, where, ": field 'image_size' = ", c.image_size,
                 " exceeds ", kMaxImageSize);
  INTERNVL_CHECK(c.norm_type == "rms_norm" || c.norm_type == "layer_norm", ConfigError, where,
                 ": field 'norm_type' must be 'rms_norm' or 'layer_norm', got '", c.norm_type, "'");
  INTERNVL_CHECK(c.hidden_act == "gelu", ConfigError, where, ": field 'hidden_act' = '", c.hidden_act,
                 "' is not supported (gelu)");
  INTERNVL_CHECK(c.layer_norm_eps > 0, ConfigError, where, ": field 'layer_norm_eps' must be positive");
  return c;
}

LlmConfig parse_llm_config(const json& j, const std::string& source) {
  LlmConfig c;
  c.architecture = first_architecture(j);
  const std::string where = source + " (" + (c.architecture.empty() ? "llm" : c.architecture) + ")";
  if (c.architecture.empty()) {
    std::string model_type;
    read_or(j, "model_type", model_type, where);
    c.architecture = llm_architecture_for_model_type(model_type);
  }
  const LlmFamily* family = find_llm_family(c.architecture);
  if (family == nullptr) {
    for (const auto& refused : refused_llms()) {
      INTERNVL_CHECK(refused.architecture != c.architecture, UnsupportedError, where, ": field 'architectures' = '",
                     c.architecture, "': ", refused.reason);
    }
    std::string known;
    for (const auto& name : llm_family_names()) known += (known.empty() ? "" : ", ") + name;
    INTERNVL_THROW(ConfigError, where, ": field 'architectures' names an unsupported language model '",
                   c.architecture, "' (supported: ", known, ")");
  }
  family->set_defaults(c);
  read_or(j, "vocab_size", c.vocab_size, where);
  read_or(j, "hidden_size", c.hidden_size, where);
  read_or(j, "intermediate_size", c.intermediate_size, where);
  read_or(j, "num_hidden_layers", c.num_hidden_layers, where);
  read_or(j, "num_attention_heads", c.num_attention_heads, where);
  c.num_key_value_heads = c.num_attention_heads;  // every family defaults kv heads to heads
  read_or(j, "num_key_value_heads", c.num_key_value_heads, where);
  read_or(j, "hidden_act", c.hidden_act, where);
  read_or(j, "max_position_embeddings", c.max_position_embeddings, where);
  read_or(j, "rms_norm_eps", c.rms_norm_eps, where);
  read_or(j, "rope_theta", c.rope_theta, where);
  read_or(j, "tie_word_embeddings", c.tie_word_embeddings, where);
  read_or(j, "bos_token_id", c.bos_token_id, where);
  read_or(j, "eos_token_id", c.eos_token_id, where);
  if (auto it = j.find("pad_token_id"); it != j.end() && !it->is_null()) {
    int pad = 0;
    read_or(j, "pad_token_id", pad, where);
    c.pad_token_id = pad;
  }
  read_or(j, "num_query_token", c.num_query_token, where);
  read_or(j, "cross_attention_frequency", c.cross_attention_frequency, where);
  family->read_fields(j, c, where);
  if (auto it = j.find("rope_scaling"); family->reads_rope_scaling && it != j.end() && !it->is_null()) {
    INTERNVL_CHECK(it->is_object(), ConfigError, where, ": field 'rope_scaling' must be an object or null");
    RopeScaling s;
    // transformers >= 4.45 writes `rope_type` (and keeps `type` for older readers).
    read_or(*it, "type", s.type, where + " rope_scaling");
    read_or(*it, "rope_type", s.type, where + " rope_scaling");
    read_or(*it, "factor", s.factor, where + " rope_scaling");
    if (s.type != "default") {
      INTERNVL_CHECK(s.type == "linear" || s.type == "dynamic", UnsupportedError, where,
                     ": field 'rope_scaling.type' = '", s.type, "' is not supported (linear, dynamic)");
      INTERNVL_CHECK(s.factor >= 1.0, ConfigError, where, ": field 'rope_scaling.factor' must be >= 1");
      c.rope_scaling = s;
    }
  }
  for (auto [value, key] : {std::pair{c.vocab_size, "vocab_size"}, {c.hidden_size, "hidden_size"},
                            {c.intermediate_size, "intermediate_size"}, {c.num_hidden_layers, "num_hidden_layers"},
                            {c.num_attention_heads, "num_attention_heads"},
                            {c.num_key_value_heads, "num_key_value_heads"},
                            {c.max_position_embeddings, "max_position_embeddings"}}) {
    require_positive(value, key, where);
  }
  if (c.explicit_head_dim == 0) {
    require_divides(c.num_attention_heads, c.hidden_size, "hidden_size / num_attention_heads", where);
  }
  require_divides(c.num_key_value_heads, c.num_attention_heads, "num_attention_heads / num_key_value_heads", where);
  INTERNVL_CHECK(c.head_dim() % 2 == 0, ConfigError, where, ": the head dimension ", c.head_dim(),
                 " must be even (rotary embedding)");
  INTERNVL_CHECK(c.hidden_act == "silu", ConfigError, where, ": field 'hidden_act' = '", c.hidden_act,
                 "' is not supported (silu)");
  INTERNVL_CHECK(c.rms_norm_eps > 0 && c.rope_theta > 0, ConfigError, where,
                 ": fields 'rms_norm_eps' and 'rope_theta' must be positive");
  return c;
}

void resolve_output_head(LlmConfig& config, const Checkpoint& checkpoint, const std::string& prefix) {
  const LlmFamily* family = find_llm_family(config.architecture);
  INTERNVL_CHECK(family != nullptr, ConfigError, "no decoder family for '", config.architecture, "'");
  const bool stored = checkpoint.contains(prefix + family->names.output_head + ".weight");
  config.tie_word_embeddings = !stored && config.tie_word_embeddings;
}

void refuse_unknown_chat_modules(const Checkpoint& checkpoint, const std::string& source) {
  for (const auto& name : checkpoint.names()) {
    const std::string top = name.substr(0, name.find('.'));
    INTERNVL_CHECK(top == "vision_model" || top == "mlp1" || top == "language_model", UnsupportedError, source,
                   ": tensor '", name, "' belongs to a module ('", top,
                   "') this library does not implement (InternVL-Chat has vision_model, mlp1 and language_model; "
                   "the -Flash variants add a visual resolution router)");
  }
}

InternVLConfig parse_internvl_config(const json& j, const std::string& source) {
  InternVLConfig c;
  c.vision = parse_vision_config(object_field(j, "vision_config", source), source);
  json qllama = object_field(j, "qllama_config", source);
  if (!qllama.contains("architectures")) qllama["architectures"] = json::array({"LlamaForCausalLM"});
  c.qllama = parse_llm_config(qllama, source + " qllama_config");
  read_or(j, "num_query_token", c.num_query_token, source);
  read_or(j, "hidden_size", c.hidden_size, source);
  read_or(j, "clip_embed_dim", c.clip_embed_dim, source);
  read_or(j, "attn_pool_num_heads", c.attn_pool_num_heads, source);
  read_or(j, "max_txt_len", c.max_txt_len, source);
  // InternVLConfig copies the top-level frequency (default 2) over the qllama value.
  read_or(j, "cross_attention_frequency", c.cross_attention_frequency, source);
  c.qllama.cross_attention_frequency = c.cross_attention_frequency;
  c.qllama.num_query_token = c.num_query_token;
  require_positive(c.num_query_token, "num_query_token", source);
  require_positive(c.clip_embed_dim, "clip_embed_dim", source);
  require_positive(c.attn_pool_num_heads, "attn_pool_num_heads", source);
  require_positive(c.cross_attention_frequency, "cross_attention_frequency", source);
  require_divides(c.attn_pool_num_heads, c.vision.hidden_size, "vision hidden_size / attn_pool_num_heads", source);
  require_divides(c.attn_pool_num_heads, c.qllama.hidden_size, "qllama hidden_size / attn_pool_num_heads", source);
  INTERNVL_CHECK(c.hidden_size == c.qllama.hidden_size, ConfigError, source, ": field 'hidden_size' (",
                 c.hidden_size, ") contradicts qllama_config.hidden_size (", c.qllama.hidden_size, ")");
  return c;
}

int InternVLChatConfig::num_image_token() const {
  const double grid = static_cast<double>(image_size() / vision.patch_size);  // double: no int overflow
  return static_cast<int>(std::lround(grid * grid * downsample_ratio * downsample_ratio));
}

InternVLChatConfig parse_internvl_chat_config(const json& j, const std::string& source) {
  InternVLChatConfig c;
  c.vision = parse_vision_config(object_field(j, "vision_config", source), source);
  c.llm = parse_llm_config(object_field(j, "llm_config", source), source + " llm_config");
  read_or(j, "select_layer", c.select_layer, source);
  read_or(j, "template", c.template_name, source);
  read_or(j, "system_message", c.system_message, source);
  read_or(j, "downsample_ratio", c.downsample_ratio, source);
  read_or(j, "ps_version", c.ps_version, source);
  read_or(j, "dynamic_image_size", c.dynamic_image_size, source);
  read_or(j, "use_thumbnail", c.use_thumbnail, source);
  read_or(j, "min_dynamic_patch", c.min_dynamic_patch, source);
  read_or(j, "max_dynamic_patch", c.max_dynamic_patch, source);
  read_or(j, "force_image_size", c.force_image_size, source);
  INTERNVL_CHECK(c.ps_version == "v1" || c.ps_version == "v2", ConfigError, source,
                 ": field 'ps_version' must be 'v1' or 'v2', got '", c.ps_version, "'");
  INTERNVL_CHECK(c.select_layer < 0 ? c.select_layer >= -c.vision.num_hidden_layers
                                    : c.select_layer <= c.vision.num_hidden_layers,
                 ConfigError, source, ": field 'select_layer' = ", c.select_layer, " is outside the ",
                 c.vision.num_hidden_layers, " vision layers");
  INTERNVL_CHECK(c.min_dynamic_patch >= 1 && c.max_dynamic_patch >= c.min_dynamic_patch, ConfigError, source,
                 ": fields 'min_dynamic_patch'/'max_dynamic_patch' must satisfy 1 <= min <= max");
  const double inverse = 1.0 / c.downsample_ratio;
  const int grid = c.image_size() / c.vision.patch_size;
  // inverse <= grid first: the int conversion below must not overflow.
  INTERNVL_CHECK(c.downsample_ratio > 0 && inverse >= 1 && inverse <= grid && std::abs(inverse - std::round(inverse)) < 1e-9 &&
                     grid % static_cast<int>(std::round(inverse)) == 0,
                 ConfigError, source, ": field 'downsample_ratio' = ", c.downsample_ratio,
                 " must be 1/k with k dividing the patch grid (", grid, ")");
  require_divides(c.vision.patch_size, c.image_size(), "force_image_size / patch_size", source);
  INTERNVL_CHECK(c.image_size() <= kMaxImageSize, ConfigError, source, ": field 'force_image_size' = ",
                 c.force_image_size, " exceeds ", kMaxImageSize);
  return c;
}

}  // namespace internvl::io
