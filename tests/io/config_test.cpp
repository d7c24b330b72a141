// Config parsing: every fixture's config.json against its reference summary, and bad configs.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "internvl/error.h"
#include "io/config.h"
#include "io/llm_family.h"
#include "support/fixtures.h"

namespace fs = std::filesystem;
using namespace internvl;
using nlohmann::json;

namespace {

TEST(Config, EveryFixtureParsesAndMatchesItsSummary) {
  const auto fixtures = internvl::testing::fixture_names();
  ASSERT_FALSE(fixtures.empty()) << "no fixtures under " << internvl::testing::fixtures_dir();
  for (const auto& fixture : fixtures) {
    SCOPED_TRACE(fixture);
    const auto raw = io::read_config_json(internvl::testing::fixture_path(fixture));
    const auto summary = internvl::testing::fixture_reference(fixture).at("config_summary");
    const auto family = io::detect_family(raw, fixture);
    const auto& vs = summary.at("vision");
    io::VisionConfig vision;
    if (family == io::ModelFamily::kInternVL) {
      const auto c = io::parse_internvl_config(raw, fixture);
      vision = c.vision;
      const auto& qs = summary.at("qllama");
      EXPECT_EQ(c.qllama.hidden_size, qs.at("hidden_size").get<int>());
      EXPECT_EQ(c.qllama.num_hidden_layers, qs.at("num_hidden_layers").get<int>());
      EXPECT_EQ(c.qllama.intermediate_size, qs.at("intermediate_size").get<int>());
      EXPECT_EQ(c.num_query_token, summary.at("num_query_token").get<int>());
      EXPECT_EQ(c.qllama.num_query_token, c.num_query_token);
      EXPECT_EQ(c.cross_attention_frequency, summary.at("cross_attention_frequency").get<int>());
      EXPECT_EQ(c.clip_embed_dim, summary.at("clip_embed_dim").get<int>());
      EXPECT_EQ(c.attn_pool_num_heads, summary.at("attn_pool_num_heads").get<int>());
      EXPECT_EQ(c.qllama.vocab_size, summary.at("vocab_size").get<int>());
    } else {
      const auto c = io::parse_internvl_chat_config(raw, fixture);
      vision = c.vision;
      const auto& ls = summary.at("llm");
      EXPECT_EQ(c.llm.hidden_size, ls.at("hidden_size").get<int>());
      EXPECT_EQ(c.llm.num_key_value_heads, ls.at("num_key_value_heads").get<int>());
      EXPECT_DOUBLE_EQ(c.llm.rope_theta, ls.at("rope_theta").get<double>());
      EXPECT_DOUBLE_EQ(c.llm.rms_norm_eps, ls.at("rms_norm_eps").get<double>());
      // Families whose official code ignores rope_scaling (4.37 Qwen2) drop it.
      const bool reads_scaling = io::find_llm_family(c.llm.architecture)->reads_rope_scaling;
      if (ls.contains("rope_scaling")) {
        EXPECT_EQ(c.llm.rope_scaling.has_value(), reads_scaling && !ls.at("rope_scaling").is_null());
      }
      if (summary.contains("head_dim")) EXPECT_EQ(c.llm.head_dim(), summary.at("head_dim").get<int>());
      if (ls.contains("head_dim")) EXPECT_EQ(c.llm.head_dim(), ls.at("head_dim").get<int>());
      EXPECT_EQ(c.llm.num_attention_heads, ls.at("num_attention_heads").get<int>());
      EXPECT_EQ(c.llm.num_hidden_layers, ls.at("num_hidden_layers").get<int>());
      EXPECT_EQ(c.llm.intermediate_size, ls.at("intermediate_size").get<int>());
      EXPECT_EQ(c.template_name, summary.at("template").get<std::string>());
      EXPECT_EQ(c.ps_version, summary.at("ps_version").get<std::string>());
      EXPECT_EQ(c.select_layer, summary.at("select_layer").get<int>());
      EXPECT_EQ(c.num_image_token(), summary.at("num_image_token").get<int>());
      EXPECT_EQ(c.max_dynamic_patch, summary.at("max_dynamic_patch").get<int>());
      EXPECT_EQ(c.use_thumbnail, summary.at("use_thumbnail").get<bool>());
      EXPECT_EQ(c.llm.vocab_size, summary.at("vocab_size").get<int>());
    }
    EXPECT_EQ(vision.hidden_size, vs.at("hidden_size").get<int>());
    EXPECT_EQ(vision.num_attention_heads, vs.at("num_attention_heads").get<int>());
    EXPECT_EQ(vision.intermediate_size, vs.at("intermediate_size").get<int>());
    EXPECT_EQ(vision.num_hidden_layers, vs.at("num_hidden_layers").get<int>());
    if (vs.contains("norm_type")) EXPECT_EQ(vision.norm_type, vs.at("norm_type").get<std::string>());
    if (vs.contains("qkv_bias")) EXPECT_EQ(vision.qkv_bias, vs.at("qkv_bias").get<bool>());
  }
}

TEST(Config, DefaultsApplyWhenKeysAreAbsent) {
  const auto vision = io::parse_vision_config(json::object(), "test");
  EXPECT_EQ(vision.hidden_size, 3200);  // InternVisionConfig defaults (InternViT-6B)
  EXPECT_EQ(vision.num_hidden_layers, 48);
  EXPECT_EQ(vision.norm_type, "rms_norm");
  const auto llama = io::parse_llm_config(json{{"architectures", {"LlamaForCausalLM"}}}, "test");
  EXPECT_EQ(llama.num_key_value_heads, llama.num_attention_heads);
  EXPECT_DOUBLE_EQ(llama.rope_theta, 10000.0);
  const auto internlm2 = io::parse_llm_config(json{{"model_type", "internlm2"}}, "test");
  EXPECT_EQ(internlm2.architecture, "InternLM2ForCausalLM");
  EXPECT_TRUE(internlm2.qkv_bias && internlm2.o_bias);
  // Qwen2Attention: q/k/v biases, none on o_proj; Qwen3Config: head_dim 128, q/k norm, no biases.
  const auto qwen2 = io::parse_llm_config(json{{"model_type", "qwen2"}}, "test");
  EXPECT_EQ(qwen2.architecture, "Qwen2ForCausalLM");
  EXPECT_TRUE(qwen2.qkv_bias);
  EXPECT_FALSE(qwen2.o_bias);
  EXPECT_FALSE(qwen2.qk_norm);
  const auto qwen3 = io::parse_llm_config(json{{"model_type", "qwen3"}}, "test");
  EXPECT_EQ(qwen3.head_dim(), 128);
  EXPECT_TRUE(qwen3.qk_norm);
  EXPECT_FALSE(qwen3.qkv_bias || qwen3.o_bias);
  // 4.37 Qwen2 ignores rope_scaling; Qwen3 honours it.
  const json scaling = {{"type", "dynamic"}, {"factor", 2.0}};
  EXPECT_FALSE(io::parse_llm_config(json{{"model_type", "qwen2"}, {"rope_scaling", scaling}}, "t").rope_scaling);
  EXPECT_TRUE(io::parse_llm_config(json{{"model_type", "qwen3"}, {"rope_scaling", scaling}}, "t").rope_scaling);
}

// Refused on purpose: UnsupportedError naming the field.
TEST(Config, UnsupportedDecodersAndFeaturesAreRefusedNamingTheField) {
  const auto expect_unsupported = [](const json& llm, const std::string& needle) {
    try {
      io::parse_llm_config(llm, "llm_config");
      ADD_FAILURE() << "expected UnsupportedError for " << llm.dump();
    } catch (const UnsupportedError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  for (const auto& refused : io::refused_llms()) {
    expect_unsupported(json{{"architectures", {refused.architecture}}}, "architectures");
  }
  for (const char* type : {"qwen2", "qwen3"}) {
    expect_unsupported(json{{"model_type", type}, {"use_sliding_window", true}}, "use_sliding_window");
  }
  expect_unsupported(json{{"model_type", "qwen3"}, {"layer_types", {"full_attention", "sliding_attention"}}},
                     "layer_types");
  expect_unsupported(json{{"model_type", "qwen3"}, {"rope_scaling", {{"rope_type", "yarn"}, {"factor", 4.0}}}},
                     "rope_scaling");
}

class ConfigFiles : public ::testing::Test {
 protected:
  fs::path dir_ = fs::path(::testing::TempDir()) / "internvl_config_test";
  void SetUp() override { fs::create_directories(dir_); }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& text) {
    const auto path = dir_ / "config.json";
    std::ofstream(path) << text;
    return path.string();
  }
  json base() {
    const auto fixtures = internvl::testing::fixtures_with_architecture("InternVLChatModel");
    if (fixtures.empty()) return json{};
    return internvl::testing::fixture_config(fixtures.front());
  }
};

template <typename Fn>
void expect_config_error(Fn&& fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "expected ConfigError mentioning '" << needle << "'";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST_F(ConfigFiles, MissingAndMalformedFilesAreConfigErrors) {
  expect_config_error([&] { io::read_config_json((dir_ / "absent").string()); }, "absent");
  const auto path = write("{ \"architectures\": [");
  expect_config_error([&] { io::read_config_json(path); }, "config.json");
  const auto array_path = write("[1, 2]");
  expect_config_error([&] { io::read_config_json(array_path); }, "config.json");
}

// Every bad value is derived from the fixture's own config, for every chat fixture.
TEST_F(ConfigFiles, BadValuesNameTheField) {
  const auto fixtures = internvl::testing::fixtures_with_architecture("InternVLChatModel");
  if (fixtures.empty()) GTEST_SKIP() << "no chat fixture";
  for (const auto& fixture : fixtures) {
    SCOPED_TRACE(fixture);
    const auto config = internvl::testing::fixture_config(fixture);
    auto with = [&](auto edit) {
      auto c = config;
      edit(c);
      return c;
    };
    const int vision_hidden = config["vision_config"]["hidden_size"].get<int>();
    int non_divisor = 2;  // the smallest head count that does not divide the vision width
    while (vision_hidden % non_divisor == 0) ++non_divisor;
    const int vision_layers = config["vision_config"]["num_hidden_layers"].get<int>();
    const int heads = config["llm_config"]["num_attention_heads"].get<int>();
    expect_config_error([&] { io::detect_family(with([](json& c) { c["architectures"] = {"Unknown"}; }), "x"); },
                        "architectures");
    expect_config_error(
        [&] { io::parse_internvl_chat_config(with([](json& c) { c["vision_config"]["hidden_size"] = "64"; }), "x"); },
        "hidden_size");
    expect_config_error(
        [&] {
          io::parse_internvl_chat_config(
              with([&](json& c) { c["vision_config"]["num_attention_heads"] = non_divisor; }), "x");
        },
        "num_attention_heads");
    expect_config_error(
        [&] { io::parse_internvl_chat_config(with([](json& c) { c["vision_config"]["norm_type"] = "batch"; }), "x"); },
        "norm_type");
    expect_config_error([&] { io::parse_internvl_chat_config(with([](json& c) { c["ps_version"] = "v3"; }), "x"); },
                        "ps_version");
    expect_config_error(
        [&] { io::parse_internvl_chat_config(with([&](json& c) { c["select_layer"] = vision_layers + 1; }), "x"); },
        "select_layer");
    expect_config_error(
        [&] { io::parse_internvl_chat_config(with([&](json& c) { c["select_layer"] = -vision_layers - 1; }), "x"); },
        "select_layer");
    // heads + 1 never divides heads.
    expect_config_error(
        [&] {
          io::parse_internvl_chat_config(with([&](json& c) { c["llm_config"]["num_key_value_heads"] = heads + 1; }),
                                         "x");
        },
        "num_key_value_heads");
    expect_config_error(
        [&] { io::parse_internvl_chat_config(with([](json& c) { c["llm_config"]["architectures"] = {"GPT2"}; }), "x"); },
        "GPT2");
    expect_config_error([&] { io::parse_internvl_chat_config(with([](json& c) { c.erase("llm_config"); }), "x"); },
                        "llm_config");
    expect_config_error(
        [&] { io::parse_internvl_chat_config(with([](json& c) { c["downsample_ratio"] = 0.3; }), "x"); },
        "downsample_ratio");
  }
}

// Negative, zero, fractional, out-of-range and wrongly typed sizes: ConfigError naming the field.
TEST_F(ConfigFiles, NegativeZeroAndNonIntegerSizesNameTheField) {
  const auto fixtures = internvl::testing::fixtures_with_architecture("InternVLChatModel");
  if (fixtures.empty()) GTEST_SKIP() << "no chat fixture";
  for (const auto& fixture : fixtures) {
  SCOPED_TRACE(fixture);
  const auto config = internvl::testing::fixture_config(fixture);
  struct Case {
    const char* section;  // "" = top level
    const char* field;
    json value;
  };
  const std::vector<Case> cases = {
      {"vision_config", "hidden_size", 0},         {"vision_config", "hidden_size", -64},
      {"vision_config", "num_hidden_layers", 0},   {"vision_config", "patch_size", -14},
      {"vision_config", "image_size", 0},          {"vision_config", "image_size", 1 << 20},
      {"vision_config", "intermediate_size", 2.5}, {"vision_config", "num_attention_heads", 1e30},
      {"vision_config", "layer_norm_eps", -1.0},   {"llm_config", "vocab_size", 0},
      {"llm_config", "num_attention_heads", -4},   {"llm_config", "max_position_embeddings", 0},
      {"llm_config", "hidden_size", 4294967296.0}, {"llm_config", "pad_token_id", "zero"},
      {"llm_config", "num_key_value_heads", 0},    {"llm_config", "rms_norm_eps", 0.0},
      {"", "max_dynamic_patch", 0},                {"", "min_dynamic_patch", -1},
      {"", "downsample_ratio", 0.0},               {"", "downsample_ratio", 1e300},
      {"", "downsample_ratio", 1e-300},            {"", "select_layer", -2147483648LL},
      {"", "force_image_size", 100000},            {"", "use_thumbnail", "yes"},
  };
  for (const auto& c : cases) {
    auto edited = config;
    (std::string(c.section).empty() ? edited : edited[c.section])[c.field] = c.value;
    SCOPED_TRACE(std::string(c.section) + "." + c.field + " = " + c.value.dump());
    expect_config_error([&] { io::parse_internvl_chat_config(edited, "x"); },
                        std::string(c.field).find("_dynamic_patch") != std::string::npos ? "dynamic_patch" : c.field);
  }
  // The same through a file: the message names the file too.
  auto edited = config;
  edited["vision_config"]["hidden_size"] = -1;
  const auto path = write(edited.dump());
  expect_config_error([&] { io::parse_internvl_chat_config(io::read_config_json(path), path); }, "config.json");
  }
}

// Values that contradict each other: heads not dividing the hidden size, the top-level
// hidden_size against qllama_config's, grids not dividing.
TEST_F(ConfigFiles, ContradictoryValuesNameTheFields) {
  const auto fixtures = internvl::testing::fixtures_with_architecture("InternVLModel");
  if (!fixtures.empty()) {
    const auto config = internvl::testing::fixture_config(fixtures.front());
    auto c = config;
    c["hidden_size"] = c["qllama_config"]["hidden_size"].get<int>() + 1;
    expect_config_error([&] { io::parse_internvl_config(c, "x"); }, "hidden_size");
    c = config;
    c["attn_pool_num_heads"] = c["vision_config"]["hidden_size"].get<int>() + 1;
    expect_config_error([&] { io::parse_internvl_config(c, "x"); }, "attn_pool_num_heads");
    c = config;
    c["qllama_config"]["num_attention_heads"] = c["qllama_config"]["hidden_size"].get<int>() + 1;
    expect_config_error([&] { io::parse_internvl_config(c, "x"); }, "num_attention_heads");
    c = config;
    c.erase("architectures");
    c["model_type"] = "something_else";
    expect_config_error([&] { io::detect_family(c, "x"); }, "architectures");
  }
  auto config = base();
  if (config.is_null()) {
    if (fixtures.empty()) GTEST_SKIP() << "no fixture";
    return;
  }
  config["vision_config"]["image_size"] = config["vision_config"]["patch_size"].get<int>() * 3 + 1;
  config.erase("force_image_size");
  expect_config_error([&] { io::parse_internvl_chat_config(config, "x"); }, "image_size");
  config = base();
  config["min_dynamic_patch"] = 6;
  config["max_dynamic_patch"] = 2;
  expect_config_error([&] { io::parse_internvl_chat_config(config, "x"); }, "max_dynamic_patch");
}

}  // namespace
