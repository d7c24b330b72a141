// Config parsing: every fixture's config.json against its reference summary, and bad configs.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "internvl/error.h"
#include "io/config.h"
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
      if (ls.contains("rope_scaling")) EXPECT_EQ(c.llm.rope_scaling.has_value(), !ls.at("rope_scaling").is_null());
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
  EXPECT_TRUE(internlm2.bias);
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

TEST_F(ConfigFiles, BadValuesNameTheField) {
  auto config = base();
  if (config.is_null()) GTEST_SKIP() << "no chat fixture";
  auto with = [&](auto edit) {
    auto c = config;
    edit(c);
    return c;
  };
  expect_config_error([&] { io::detect_family(with([](json& c) { c["architectures"] = {"Unknown"}; }), "x"); },
                      "architectures");
  expect_config_error(
      [&] { io::parse_internvl_chat_config(with([](json& c) { c["vision_config"]["hidden_size"] = "64"; }), "x"); },
      "hidden_size");
  expect_config_error(
      [&] { io::parse_internvl_chat_config(with([](json& c) { c["vision_config"]["num_attention_heads"] = 7; }), "x"); },
      "num_attention_heads");
  expect_config_error(
      [&] { io::parse_internvl_chat_config(with([](json& c) { c["vision_config"]["norm_type"] = "batch"; }), "x"); },
      "norm_type");
  expect_config_error([&] { io::parse_internvl_chat_config(with([](json& c) { c["ps_version"] = "v3"; }), "x"); },
                      "ps_version");
  expect_config_error([&] { io::parse_internvl_chat_config(with([](json& c) { c["select_layer"] = 99; }), "x"); },
                      "select_layer");
  expect_config_error(
      [&] { io::parse_internvl_chat_config(with([](json& c) { c["llm_config"]["num_key_value_heads"] = 3; }), "x"); },
      "num_key_value_heads");
  expect_config_error(
      [&] { io::parse_internvl_chat_config(with([](json& c) { c["llm_config"]["architectures"] = {"GPT2"}; }), "x"); },
      "GPT2");
  expect_config_error([&] { io::parse_internvl_chat_config(with([](json& c) { c.erase("llm_config"); }), "x"); },
                      "llm_config");
  expect_config_error(
      [&] { io::parse_internvl_chat_config(with([](json& c) { c["downsample_ratio"] = 0.3; }), "x"); },
      "downsample_ratio");
  expect_config_error(
      [&] {
        io::parse_internvl_chat_config(with([](json& c) { c["llm_config"]["rope_scaling"] = {{"type", "yarn"}}; }), "x");
      },
      "rope_scaling");
}

}  // namespace
