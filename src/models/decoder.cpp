#include "models/decoder.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

#include "common/check.h"
#include "kernels/cpu_gemv.h"
#include "nn/attention.h"
#include "nn/rotary.h"

namespace internvl::models {

const io::LlmFamily& decoder_family(const io::LlmConfig& config) {
  const io::LlmFamily* family = io::find_llm_family(config.architecture);
  INTERNVL_CHECK(family != nullptr, ConfigError, "language model architecture '", config.architecture,
                 "' is not supported");
  return *family;
}

namespace {

// The child `name` of `parent`, created empty when absent (a level of a dotted official name).
std::shared_ptr<torch::nn::Module> child(torch::nn::Module& parent, const std::string& name) {
  if (auto* found = parent.named_children().find(name)) return *found;
  return parent.register_module(name, std::make_shared<torch::nn::Module>());
}

// The module at a dotted path below `root` ("model.embed_tokens"), creating the levels.
std::shared_ptr<torch::nn::Module> path(torch::nn::Module& root, const std::string& dotted) {
  std::shared_ptr<torch::nn::Module> current;
  torch::nn::Module* parent = &root;
  size_t begin = 0;
  while (true) {
    const size_t dot = dotted.find('.', begin);
    current = child(*parent, dotted.substr(begin, dot == std::string::npos ? std::string::npos : dot - begin));
    if (dot == std::string::npos) return current;
    parent = current.get();
    begin = dot + 1;
  }
}

// Registers `module` at a dotted path below `root` ("model.layers"), creating the parent levels.
template <typename Holder>
Holder register_at(torch::nn::Module& root, const std::string& dotted, Holder module) {
  const size_t dot = dotted.rfind('.');
  if (dot == std::string::npos) return root.register_module(dotted, std::move(module));
  return path(root, dotted.substr(0, dot))->register_module(dotted.substr(dot + 1), std::move(module));
}

}  // namespace

DecoderLayerImpl::DecoderLayerImpl(const io::LlmConfig& c, const io::LlmFamily& family, const nn::ParamInit& init)
    : config(c), qkv_layout(family.qkv_layout) {
  const auto& n = family.names;
  const int64_t d = c.hidden_size, hd = c.head_dim(), h = c.num_attention_heads, hkv = c.num_key_value_heads;
  const auto rms = [&](const std::string& name) {
    return register_module(name, nn::Norm(nn::NormKind::kRMSNorm, d, c.rms_norm_eps, init));
  };
  attn_norm = rms(n.attn_norm);
  ffn_norm = rms(n.ffn_norm);
  auto attention = register_module(n.attention, std::make_shared<torch::nn::Module>());
  if (qkv_layout == io::QkvLayout::kInternLM2Grouped) {
    wqkv = attention->register_module(n.wqkv, nn::Linear(d, (h + 2 * hkv) * hd, c.qkv_bias, init));
  } else {
    q_proj = attention->register_module(n.q_proj, nn::Linear(d, h * hd, c.qkv_bias, init));
    k_proj = attention->register_module(n.k_proj, nn::Linear(d, hkv * hd, c.qkv_bias, init));
    v_proj = attention->register_module(n.v_proj, nn::Linear(d, hkv * hd, c.qkv_bias, init));
  }
  o_proj = attention->register_module(n.o_proj, nn::Linear(h * hd, d, c.o_bias, init));
  if (c.qk_norm) {
    INTERNVL_CHECK(!n.q_norm.empty() && !n.k_norm.empty(), ConfigError, family.architecture,
                   ": qk_norm needs the family's q_norm/k_norm names");
    q_norm = attention->register_module(n.q_norm, nn::Norm(nn::NormKind::kRMSNorm, hd, c.rms_norm_eps, init));
    k_norm = attention->register_module(n.k_norm, nn::Norm(nn::NormKind::kRMSNorm, hd, c.rms_norm_eps, init));
  }
  auto mlp = register_module(n.mlp, std::make_shared<torch::nn::Module>());
  gate = mlp->register_module(n.gate_proj, nn::Linear(d, c.intermediate_size, false, init));
  up = mlp->register_module(n.up_proj, nn::Linear(d, c.intermediate_size, false, init));
  down = mlp->register_module(n.down_proj, nn::Linear(c.intermediate_size, d, false, init));
}

std::vector<at::Tensor> DecoderLayerImpl::qkv_linear(const at::Tensor& x) const {
  if (qkv_layout == io::QkvLayout::kInternLM2Grouped) return {wqkv->forward(x)};
  return {q_proj->forward(x), k_proj->forward(x), v_proj->forward(x)};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> DecoderLayerImpl::qkv_heads(const std::vector<at::Tensor>& projected) const {
  const auto& first = projected.front();
  const int64_t batch = first.size(0), length = first.size(1), hd = config.head_dim();
  const int64_t h = config.num_attention_heads, hkv = config.num_key_value_heads;
  at::Tensor q, k, v;
  if (qkv_layout == io::QkvLayout::kInternLM2Grouped) {
    // wqkv rows are grouped per kv head: [Hkv, H/Hkv queries + key + value, hd].
    const int64_t group = h / hkv;
    const auto fused = first.view({batch, length, hkv, group + 2, hd});
    q = fused.slice(3, 0, group).reshape({batch, length, h, hd}).transpose(1, 2);
    k = fused.select(3, group).transpose(1, 2);
    v = fused.select(3, group + 1).transpose(1, 2);
  } else {
    q = projected[0].view({batch, length, h, hd}).transpose(1, 2);
    k = projected[1].view({batch, length, hkv, hd}).transpose(1, 2);
    v = projected[2].view({batch, length, hkv, hd}).transpose(1, 2);
  }
  if (!q_norm.is_empty()) {
    // Qwen3: RMSNorm over head_dim of every head, before RoPE.
    q = q_norm->forward(q);
    k = k_norm->forward(k);
  }
  return {q, k, v};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> DecoderLayerImpl::project_qkv(const at::Tensor& x) const {
  return qkv_heads(qkv_linear(x));
}

at::Tensor DecoderLayerImpl::forward_decode(const at::Tensor& h_in, const std::vector<std::pair<at::Tensor, at::Tensor>>& rope,
                                            const std::vector<nn::KVCache*>& caches, int64_t index, bool row_exact) const {
  const int64_t batch = h_in.size(0);
  // fn over each row [1, ...] (row_exact) or over the whole batch at once.
  const auto by_row = [&](auto&& fn, const auto&... tensors) -> at::Tensor {
    if (!row_exact) return fn(tensors...);
    std::vector<at::Tensor> rows;
    rows.reserve(batch);
    for (int64_t b = 0; b < batch; ++b) rows.push_back(fn(tensors.narrow(0, b, 1)...));
    return at::cat(rows, 0);
  };
  const auto x = by_row([&](const at::Tensor& t) { return attn_norm->forward(t); }, h_in);
  const auto projected = qkv_linear(x);
  nn::AttentionOptions options;
  options.force_aten = force_aten;
  std::vector<at::Tensor> attended;
  attended.reserve(batch);
  for (int64_t b = 0; b < batch; ++b) {
    // Each sequence attends over its own cache and length: no padding, no mask.
    std::vector<at::Tensor> row;
    for (const auto& p : projected) row.push_back(p.narrow(0, b, 1));
    auto [q, k, v] = qkv_heads(row);
    q = nn::apply_rotary(q, rope[b].first, rope[b].second);
    k = nn::apply_rotary(k, rope[b].first, rope[b].second);
    auto [keys, values] = caches[b]->append(index, k, v);
    attended.push_back(nn::decode_attention_grouped(q, keys, values, options));  // [1, H, 1, hd]
  }
  const auto o = o_proj->forward(at::cat(attended, 0).transpose(1, 2).reshape({batch, 1, -1}));
  // h = h_in + o is exact batched; the norm of it is not (reductions).
  const auto h = h_in + o;
  const auto xf = by_row([&](const at::Tensor& t) { return ffn_norm->forward(t); }, h);
  const auto g = gate->forward(xf), u = up->forward(xf);
  const auto act = by_row([](const at::Tensor& gr, const at::Tensor& ur) { return at::silu(gr) * ur; }, g, u);
  return h + down->forward(act);
}

at::Tensor DecoderLayerImpl::forward(const at::Tensor& h_in, const at::Tensor& cos, const at::Tensor& sin,
                                     nn::KVCache& cache, int64_t index) const {
  const int64_t length = h_in.size(1);
  auto [q, k, v] = project_qkv(attn_norm->forward(h_in));
  q = nn::apply_rotary(q, cos, sin);
  k = nn::apply_rotary(k, cos, sin);
  const int64_t past = cache.length();
  auto [keys, values] = cache.append(index, k, v);
  nn::AttentionOptions options;
  options.force_aten = force_aten;
  at::Tensor mask;
  if (length > 1) {
    if (past == 0) {
      options.causal = true;
    } else {
      // Queries are the last `length` of past+length positions (bottom-right aligned causal).
      mask = at::ones({length, past + length}, at::TensorOptions().dtype(at::kBool).device(h_in.device())).tril(past);
    }
  }
  return finish(h_in, nn::attention(q, keys, values, options, mask));  // attended [B, H, L, hd]
}

at::Tensor DecoderLayerImpl::finish(const at::Tensor& h_in, const at::Tensor& attended) const {
  const int64_t batch = h_in.size(0), length = h_in.size(1);
  // h = h_in + o_proj(attended) and x = ffn_norm(h) in one pass on CUDA (same roundings).
  const auto [x, h] = ffn_norm->forward_add(o_proj->forward(attended.transpose(1, 2).reshape({batch, length, -1})), h_in);
  return h + down->forward(at::silu(gate->forward(x)) * up->forward(x));
}

at::Tensor DecoderLayerImpl::forward_static(const at::Tensor& h_in, const at::Tensor& cos, const at::Tensor& sin,
                                            nn::KVCache& cache, int64_t index, const at::Tensor& position,
                                            const at::Tensor& lengths) const {
  auto [q, k, v] = project_qkv(attn_norm->forward(h_in));
  q = nn::apply_rotary(q, cos, sin);
  k = nn::apply_rotary(k, cos, sin);
  auto [keys, values] = cache.write_at(index, k, v, position);
  nn::AttentionOptions options;
  options.force_aten = force_aten;
  return finish(h_in, nn::decode_attention(q, keys, values, lengths, options));
}

CausalLMImpl::CausalLMImpl(const io::LlmConfig& c, const nn::ParamInit& init)
    : config_(c), family_(&decoder_family(c)) {
  const auto& n = family_->names;
  auto embed = path(*this, n.embed_tokens);
  embed_weight = embed->register_parameter("weight", at::empty({c.vocab_size, c.hidden_size}, init.options()));
  auto layer_list = torch::nn::ModuleList();
  for (int i = 0; i < c.num_hidden_layers; ++i) layer_list->push_back(DecoderLayer(c, *family_, init));
  layers = register_at(*this, n.layers, layer_list);
  norm = register_at(*this, n.final_norm, nn::Norm(nn::NormKind::kRMSNorm, c.hidden_size, c.rms_norm_eps, init));
  if (c.tie_word_embeddings) {
    output_weight = embed_weight;
  } else {
    auto head = path(*this, n.output_head);
    output_weight = head->register_parameter("weight", at::empty({c.vocab_size, c.hidden_size}, init.options()));
  }
}

void CausalLMImpl::set_force_aten(bool force) {
  for (const auto& layer : *layers) layer->as<DecoderLayer>()->force_aten = force;
}

double CausalLMImpl::rope_base(int64_t seq_len) const {
  const double base = config_.rope_theta;
  if (!config_.rope_scaling || config_.rope_scaling->type != "dynamic" || seq_len <= config_.max_position_embeddings) {
    return base;
  }
  const double factor = config_.rope_scaling->factor, dim = config_.head_dim();
  return base * std::pow(factor * seq_len / config_.max_position_embeddings - (factor - 1), dim / (dim - 2));
}

at::Tensor CausalLMImpl::embed(const at::Tensor& input_ids) const {
  INTERNVL_CHECK(input_ids.numel() == 0 || (input_ids.min().item<int64_t>() >= 0 &&
                                            input_ids.max().item<int64_t>() < config_.vocab_size),
                 InvalidArgument, "token ids must be in 0..", config_.vocab_size - 1);
  return at::embedding(embed_weight, input_ids.to(embed_weight.device()));
}

int64_t CausalLMImpl::context_length() const {
  const auto& scaling = config_.rope_scaling;
  return static_cast<int64_t>(config_.max_position_embeddings * (scaling ? scaling->factor : 1.0));
}

nn::KVCache CausalLMImpl::make_cache(int64_t batch, int64_t capacity, bool zero_fill) const {
  const int64_t context = context_length();
  INTERNVL_CHECK(capacity > 0 && capacity <= context, InvalidArgument, "KV cache capacity ", capacity,
                 " must be in 1..", context, " (the model's context)");
  return nn::KVCache(config_.num_hidden_layers, batch, config_.num_key_value_heads, config_.head_dim(), capacity,
                     embed_weight.options(), zero_fill, context);
}

at::Tensor CausalLMImpl::embed_unchecked(const at::Tensor& input_ids) const {
  return at::embedding(embed_weight, input_ids);
}

bool CausalLMImpl::static_decode_supported(int64_t total_length) const {
  return rope_base(1) == rope_base(std::max<int64_t>(total_length, 1));
}

at::Tensor CausalLMImpl::forward(const at::Tensor& inputs_embeds, nn::KVCache& cache) const {
  INTERNVL_CHECK(inputs_embeds.dim() == 3 && inputs_embeds.size(2) == config_.hidden_size, InvalidArgument,
                 "decoder: inputs_embeds must be [batch, tokens, ", config_.hidden_size, "], got ", inputs_embeds.sizes());
  INTERNVL_CHECK(cache.layers() == config_.num_hidden_layers, InvalidArgument, "decoder: the KV cache has ",
                 cache.layers(), " layers, the model ", config_.num_hidden_layers);
  const int64_t length = inputs_embeds.size(1), past = cache.length();
  const auto positions = at::arange(past, past + length, at::TensorOptions().dtype(at::kLong).device(inputs_embeds.device()));
  auto scaled = positions;
  if (config_.rope_scaling && config_.rope_scaling->type == "linear") {
    scaled = positions.to(at::kFloat) / config_.rope_scaling->factor;
  }
  const auto [cos, sin] = nn::rotary_cos_sin(scaled, config_.head_dim(), rope_base(past + length));
  auto h = inputs_embeds.to(embed_weight.scalar_type());
  int64_t index = 0;
  for (const auto& layer : *layers) h = layer->as<DecoderLayer>()->forward(h, cos, sin, cache, index++);
  cache.advance(length);
  return norm->forward(h);
}

at::Tensor CausalLMImpl::forward_decode(const at::Tensor& inputs_embeds, const std::vector<nn::KVCache*>& caches,
                                        bool row_exact) const {
  INTERNVL_CHECK(inputs_embeds.dim() == 3 && inputs_embeds.size(1) == 1 && inputs_embeds.size(2) == config_.hidden_size &&
                     inputs_embeds.size(0) == static_cast<int64_t>(caches.size()),
                 InvalidArgument, "decoder: a decode step needs inputs_embeds [", caches.size(), ", 1, ",
                 config_.hidden_size, "], got ", inputs_embeds.sizes());
  std::vector<std::pair<at::Tensor, at::Tensor>> rope;
  rope.reserve(caches.size());
  for (auto* cache : caches) {
    INTERNVL_CHECK(cache != nullptr && cache->layers() == config_.num_hidden_layers && cache->batch() == 1,
                   InvalidArgument, "decoder: every sequence of a decode step needs its own cache of ",
                   config_.num_hidden_layers, " layers");
    // The tables of a one-token forward at this position, computed as forward() computes them.
    const int64_t past = cache->length();
    const auto positions = at::arange(past, past + 1, at::TensorOptions().dtype(at::kLong).device(inputs_embeds.device()));
    auto scaled = positions;
    if (config_.rope_scaling && config_.rope_scaling->type == "linear") {
      scaled = positions.to(at::kFloat) / config_.rope_scaling->factor;
    }
    rope.push_back(nn::rotary_cos_sin(scaled, config_.head_dim(), rope_base(past + 1)));
  }
  auto h = inputs_embeds.to(embed_weight.scalar_type());
  int64_t index = 0;
  for (const auto& layer : *layers) h = layer->as<DecoderLayer>()->forward_decode(h, rope, caches, index++, row_exact);
  for (auto* cache : caches) cache->advance(1);
  if (!row_exact) return norm->forward(h);
  std::vector<at::Tensor> rows;
  for (int64_t b = 0; b < h.size(0); ++b) rows.push_back(norm->forward(h.narrow(0, b, 1)));
  return at::cat(rows, 0);
}

at::Tensor CausalLMImpl::forward_static(const at::Tensor& inputs_embeds, nn::KVCache& cache, const at::Tensor& position,
                                        double rope_base_value) const {
  INTERNVL_CHECK(inputs_embeds.dim() == 3 && inputs_embeds.size(1) == 1 && inputs_embeds.size(2) == config_.hidden_size,
                 InvalidArgument, "decoder: static step inputs_embeds must be [batch, 1, ", config_.hidden_size, "]");
  INTERNVL_CHECK(cache.layers() == config_.num_hidden_layers, InvalidArgument, "decoder: the KV cache has ",
                 cache.layers(), " layers, the model ", config_.num_hidden_layers);
  at::Tensor scaled = position;
  if (config_.rope_scaling && config_.rope_scaling->type == "linear") {
    scaled = position.to(at::kFloat) / config_.rope_scaling->factor;
  }
  const auto [cos, sin] = nn::rotary_cos_sin(scaled, config_.head_dim(), rope_base_value);
  const auto lengths = (position + 1).to(at::kInt).expand({inputs_embeds.size(0)}).contiguous();
  auto h = inputs_embeds.to(embed_weight.scalar_type());
  int64_t index = 0;
  for (const auto& layer : *layers) {
    h = layer->as<DecoderLayer>()->forward_static(h, cos, sin, cache, index++, position, lengths);
  }
  return norm->forward(h);
}

at::Tensor CausalLMImpl::logits(const at::Tensor& hidden) const {
  if (kernels::cpu_gemv_supported(hidden, output_weight, {})) return kernels::cpu_gemv(hidden, output_weight, {});
  return at::linear(hidden, output_weight);
}

}  // namespace internvl::models
