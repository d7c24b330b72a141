// Tokenizers against the fixtures (InternVL-C/G captions, chat prompts, generated text) plus
// bad-input and round-trip properties. Every id, size and string comes from the fixture files.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <dirent.h>
#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <sstream>

#include "internvl/error.h"
#include "support/expect.h"
#include "support/files.h"
#include "support/fixtures.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace internvl::tokenizer {
namespace {

using internvl::testing::fixture_config;
using internvl::testing::fixture_path;
using internvl::testing::fixture_reference;
using internvl::testing::fixture_names;
using internvl::testing::fixtures_with_architecture;
using internvl::testing::has_reference_tensor;
using internvl::testing::reference_tensor;
using internvl::testing::TensorsEqual;
using nlohmann::json;

std::vector<int64_t> ids_of(const json& list) { return list.get<std::vector<int64_t>>(); }

at::Tensor to_tensor(const std::vector<int64_t>& ids) {
  return at::tensor(at::ArrayRef<int64_t>(ids), at::TensorOptions().dtype(at::kLong));
}

// Fixture folders that hold a tokenizer.
std::vector<std::string> tokenizer_fixtures() {
  std::vector<std::string> out;
  for (const auto& name : fixture_names()) {
    if (::access((fixture_path(name) + "/tokenizer.model").c_str(), R_OK) == 0) out.push_back(name);
  }
  return out;
}

using internvl::testing::read_bytes;
using internvl::testing::write_bytes;
// A fresh temporary directory for this test's files.
class TempDir : public internvl::testing::TempDir {
 public:
  TempDir() : internvl::testing::TempDir("tokenizer_test") {}
};

// Copies the tokenizer files of a fixture into `dir`.
void copy_tokenizer_files(const std::string& fixture, const TempDir& dir) {
  for (const char* name : {"tokenizer.model", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"}) {
    const std::string source = fixture_path(fixture) + "/" + name;
    if (::access(source.c_str(), R_OK) == 0) write_bytes(dir.file(name), read_bytes(source));
  }
}

// Equality of long strings, reporting only the neighbourhood of the first difference.
::testing::AssertionResult SameText(const std::string& actual, const std::string& expected) {
  if (actual == expected) return ::testing::AssertionSuccess();
  size_t i = 0;
  while (i < actual.size() && i < expected.size() && actual[i] == expected[i]) ++i;
  const size_t from = i > 40 ? i - 40 : 0;
  return ::testing::AssertionFailure() << "texts differ at byte " << i << " (sizes " << actual.size() << " vs "
                                       << expected.size() << ")\n  actual:   \"" << actual.substr(from, 100)
                                       << "\"\n  expected: \"" << expected.substr(from, 100) << "\"";
}

using internvl::testing::expect_config_error_naming;

// ---- InternVL-C/G text input -----------------------------------------------------------------

TEST(RetrievalTokenizer, CaptionsMatchReference) {
  const auto fixtures = fixtures_with_architecture("InternVLModel");
  if (fixtures.empty()) GTEST_SKIP() << "no InternVLModel fixture";
  for (const auto& fixture : fixtures) {
    SCOPED_TRACE(fixture);
    const Tokenizer tokenizer(fixture_path(fixture));
    const json ref = fixture_reference(fixture);
    const json info = ref.value("tokenizer", json::object());
    const int64_t max_length = info.value("max_length", 80);
    const std::string prefix = info.value("prefix", std::string("summarize:"));
    const auto& captions = ref["inputs"]["captions"];
    ASSERT_FALSE(captions.empty());
    at::Tensor stored;
    if (has_reference_tensor(fixture, "input_ids")) stored = reference_tensor(fixture, "input_ids");
    for (size_t k = 0; k < captions.size(); ++k) {
      const auto& caption = captions[k];
      const std::string text = caption["text"].get<std::string>();
      SCOPED_TRACE("caption " + std::to_string(k) + ": " + text);
      if (caption.contains("model_input_text")) EXPECT_EQ(prefix + text, caption["model_input_text"].get<std::string>());
      const RetrievalEncoding enc = tokenizer.encode_for_retrieval(text, max_length, prefix);
      const auto expected = ids_of(caption["input_ids"]);
      EXPECT_EQ(enc.input_ids, expected);
      EXPECT_EQ(static_cast<int64_t>(enc.input_ids.size()), max_length);
      if (caption.contains("n_nonpad")) EXPECT_EQ(enc.length, caption["n_nonpad"].get<int64_t>());
      if (stored.defined()) EXPECT_TRUE(TensorsEqual(to_tensor(enc.input_ids), stored.select(0, k)));
      if (caption.contains("tokens")) {
        const auto pieces = caption["tokens"].get<std::vector<std::string>>();
        ASSERT_EQ(pieces.size(), enc.input_ids.size());
        for (size_t i = 0; i < pieces.size(); ++i) EXPECT_EQ(tokenizer.id_to_piece(enc.input_ids[i]), pieces[i]) << i;
      }
      // The sequence always ends with eos before the padding, even when truncated.
      ASSERT_GE(enc.length, 2);
      EXPECT_EQ(enc.input_ids[enc.length - 1], tokenizer.eos_id());
      EXPECT_EQ(enc.input_ids[0], tokenizer.bos_id());
    }
  }
}

TEST(RetrievalTokenizer, TruncatesLongTextKeepingEos) {
  const auto fixtures = fixtures_with_architecture("InternVLModel");
  if (fixtures.empty()) GTEST_SKIP() << "no InternVLModel fixture";
  const Tokenizer tokenizer(fixture_path(fixtures.front()));
  std::string text;
  for (int i = 0; i < 200; ++i) text += "word" + std::to_string(i) + " ";
  for (const int64_t max_length : {4, 16, 80}) {
    const auto enc = tokenizer.encode_for_retrieval(text, max_length);
    ASSERT_EQ(static_cast<int64_t>(enc.input_ids.size()), max_length);
    EXPECT_EQ(enc.length, max_length);
    EXPECT_EQ(enc.input_ids.back(), tokenizer.eos_id());
    // The body is the prefix of the untruncated encoding.
    const auto full = tokenizer.encode("summarize:" + text, false);
    for (int64_t i = 1; i + 1 < max_length; ++i) EXPECT_EQ(enc.input_ids[i], full[i - 1]);
  }
  EXPECT_THROW(tokenizer.encode_for_retrieval("x", 2), InvalidArgument);
}

// ---- chat prompts and generated text ---------------------------------------------------------

struct ChatFixture {
  std::string name;
  json config;
  json ref;
};

std::vector<ChatFixture> chat_fixtures() {
  std::vector<ChatFixture> out;
  for (const auto& name : fixtures_with_architecture("InternVLChatModel"))
    out.push_back({name, fixture_config(name), fixture_reference(name)});
  return out;
}

TEST(ChatTokenizer, SpecialTokenIdsMatchReference) {
  const auto fixtures = chat_fixtures();
  if (fixtures.empty()) GTEST_SKIP() << "no InternVLChatModel fixture";
  for (const auto& f : fixtures) {
    SCOPED_TRACE(f.name);
    const Tokenizer tokenizer(fixture_path(f.name));
    const json info = f.ref.value("tokenizer", json::object());
    if (info.contains("len_tokenizer")) EXPECT_EQ(tokenizer.vocab_size(), info["len_tokenizer"].get<int64_t>());
    if (info.contains("sentencepiece_pieces"))
      EXPECT_EQ(tokenizer.sp_vocab_size(), info["sentencepiece_pieces"].get<int64_t>());
    // null (no such token) is -1 here.
    const auto id_or_none = [&](const char* key) { return info[key].is_null() ? int64_t{-1} : info[key].get<int64_t>(); };
    if (info.contains("bos_token_id")) EXPECT_EQ(tokenizer.bos_id(), id_or_none("bos_token_id"));
    if (info.contains("eos_token_id")) EXPECT_EQ(tokenizer.eos_id(), id_or_none("eos_token_id"));
    if (info.contains("pad_token_id")) EXPECT_EQ(tokenizer.pad_id(), id_or_none("pad_token_id"));
    if (info.contains("add_bos_token")) EXPECT_EQ(tokenizer.add_bos_token(), info["add_bos_token"].get<bool>());
    // len(tokenizer) is the LLM vocabulary size of these checkpoints.
    if (f.config.contains("llm_config") && f.config["llm_config"].contains("vocab_size"))
      EXPECT_EQ(tokenizer.vocab_size(), f.config["llm_config"]["vocab_size"].get<int64_t>());
    const json summary = f.ref.value("config_summary", json::object());
    if (summary.contains("img_context_token_id"))
      EXPECT_EQ(tokenizer.token_to_id("<IMG_CONTEXT>"), summary["img_context_token_id"].get<int64_t>());
    if (summary.contains("eos_token_id_used_by_chat")) {
      const auto& conversation = get_conversation_template(f.config["template"].get<std::string>());
      EXPECT_EQ(tokenizer.token_to_id(conversation.eos_token()), summary["eos_token_id_used_by_chat"].get<int64_t>());
    }
  }
}

TEST(ChatTokenizer, PromptIdsMatchReference) {
  const auto fixtures = chat_fixtures();
  if (fixtures.empty()) GTEST_SKIP() << "no InternVLChatModel fixture";
  for (const auto& f : fixtures) {
    SCOPED_TRACE(f.name);
    const Tokenizer tokenizer(fixture_path(f.name));
    const int64_t img_context = tokenizer.token_to_id("<IMG_CONTEXT>");
    for (const auto& conv : f.ref["inputs"]["conversations"]) {
      const std::string key = conv["key"].get<std::string>();
      SCOPED_TRACE(key);
      const std::string prompt = conv["prompt"].get<std::string>();
      const auto ids = tokenizer.encode(prompt);
      const auto expected = ids_of(conv["input_ids"]);
      ASSERT_EQ(ids.size(), expected.size());
      for (size_t i = 0; i < ids.size(); ++i) {
        if (ids[i] != expected[i]) {
          ADD_FAILURE() << "first mismatch at " << i << ": " << ids[i] << " (" << tokenizer.id_to_piece(ids[i])
                        << ") vs " << expected[i] << " (" << tokenizer.id_to_piece(expected[i]) << ")";
          break;
        }
      }
      if (conv.contains("n_prompt_tokens")) EXPECT_EQ(static_cast<int64_t>(ids.size()), conv["n_prompt_tokens"].get<int64_t>());
      if (conv.contains("n_img_context_tokens"))
        EXPECT_EQ(std::count(ids.begin(), ids.end(), img_context), conv["n_img_context_tokens"].get<int64_t>());
      const std::string tensor_name = "conv." + key + ".input_ids";
      if (has_reference_tensor(f.name, tensor_name))
        EXPECT_TRUE(TensorsEqual(to_tensor(ids), reference_tensor(f.name, tensor_name)));
      // encode without special tokens drops only the bos.
      const auto bare = tokenizer.encode(prompt, false);
      EXPECT_EQ(bare.size() + (tokenizer.add_bos_token() ? 1 : 0), ids.size());
    }
  }
}

TEST(ChatTokenizer, GeneratedTextMatchesReference) {
  const auto fixtures = chat_fixtures();
  if (fixtures.empty()) GTEST_SKIP() << "no InternVLChatModel fixture";
  for (const auto& f : fixtures) {
    SCOPED_TRACE(f.name);
    const Tokenizer tokenizer(fixture_path(f.name));
    const auto& conversation = get_conversation_template(f.config["template"].get<std::string>());
    for (const auto& conv : f.ref["inputs"]["conversations"]) {
      SCOPED_TRACE(conv["key"].get<std::string>());
      const auto generated = ids_of(conv["generated_ids"]);
      const std::string tensor_name = "conv." + conv["key"].get<std::string>() + ".generated_ids";
      if (has_reference_tensor(f.name, tensor_name))
        EXPECT_TRUE(TensorsEqual(to_tensor(generated), reference_tensor(f.name, tensor_name)));
      if (conv.contains("generated_tokens")) {
        const auto pieces = conv["generated_tokens"].get<std::vector<std::string>>();
        ASSERT_EQ(pieces.size(), generated.size());
        for (size_t i = 0; i < pieces.size(); ++i) EXPECT_EQ(tokenizer.id_to_piece(generated[i]), pieces[i]);
      }
      DecodeOptions options;
      // The official response decode (skip_special_tokens=True except the InternVL3.5 code).
      const std::string response_decode = f.ref.value("generation", json::object()).value("response_decode", "");
      options.skip_special_tokens = response_decode.find("skip_special_tokens=False") == std::string::npos;
      const std::string decoded = tokenizer.decode(generated, options);
      EXPECT_EQ(extract_response(conversation, decoded), conv["response"].get<std::string>());

      // Streaming gives the same text, whether ids come one by one or in one call.
      StreamDecoder stream(tokenizer, options);
      std::string streamed;
      for (const int64_t id : generated) streamed += stream.push(id);
      streamed += stream.flush();
      EXPECT_TRUE(SameText(streamed, decoded));
      StreamDecoder batch(tokenizer, options);
      std::string batched = batch.push(generated);  // push before flush: operands of + are unsequenced
      batched += batch.flush();
      EXPECT_TRUE(SameText(batched, decoded));
      // Also with special tokens kept and the prompt in front.
      std::vector<int64_t> all = ids_of(conv["input_ids"]);
      all.insert(all.end(), generated.begin(), generated.end());
      StreamDecoder with_specials(tokenizer);
      std::string text;
      for (const int64_t id : all) text += with_specials.push(id);
      text += with_specials.flush();
      EXPECT_TRUE(SameText(text, tokenizer.decode(all)));
    }
  }
}

// ---- flavour-specific encoding rules, checked on every fixture tokenizer ---------------------

TEST(Tokenizer, DummyPrefixRulesAroundSpecialTokens) {
  for (const auto& fixture : tokenizer_fixtures()) {
    SCOPED_TRACE(fixture);
    const Tokenizer tokenizer(fixture_path(fixture));
    ASSERT_FALSE(tokenizer.special_tokens().empty());
    const std::string special = tokenizer.eos_token();
    ASSERT_TRUE(tokenizer.find_token(special).has_value());
    const auto tokens = tokenizer.tokenize(special + "hello world");
    ASSERT_GE(tokens.size(), 2u);
    EXPECT_EQ(tokens[0], special);
    const bool starts_with_underline = tokens[1].rfind("\xE2\x96\x81", 0) == 0;
    // InternLM2 and legacy LLaMA give every segment its own dummy prefix; LLaMA legacy=false none.
    EXPECT_EQ(starts_with_underline, tokenizer.flavour() != TokenizerFlavour::kLlama) << tokens[1];
    // Plain text starts with a dummy prefix in every flavour.
    const auto plain = tokenizer.tokenize("hello world");
    ASSERT_FALSE(plain.empty());
    EXPECT_EQ(plain[0].rfind("\xE2\x96\x81", 0), 0u) << plain[0];
    // Special-token strings are split out wherever they occur.
    const auto ids = tokenizer.encode("a" + special + special + "b", false);
    EXPECT_EQ(std::count(ids.begin(), ids.end(), tokenizer.token_to_id(special)), 2);
    EXPECT_TRUE(tokenizer.encode("", false).empty());
    const auto with_specials = tokenizer.encode("");
    EXPECT_EQ(with_specials.size(), static_cast<size_t>(tokenizer.add_bos_token()) + tokenizer.add_eos_token());
  }
}

TEST(Tokenizer, EncodeDecodeRoundTrip) {
  const std::vector<std::string> texts = {
      "The quick brown fox jumps over the lazy dog",
      "Numbers 0123456789 and symbols #@%^&*()[]{}<>",
      "\xE4\xB8\x80\xE5\x8F\xAA\xE7\x8C\xAB\xE5\x9D\x90\xE5\x9C\xA8\xE6\xB2\x99\xE5\x8F\x91\xE4\xB8\x8A",  // 一只猫坐在沙发上
      "emoji \xF0\x9F\x90\xB1\xF0\x9F\x9A\x80 caf\xC3\xA9 \xC2\xBD",
      "tabs\tand\nnew lines",
      "  leading and trailing spaces  ",
  };
  for (const auto& fixture : tokenizer_fixtures()) {
    SCOPED_TRACE(fixture);
    const Tokenizer tokenizer(fixture_path(fixture));
    for (const auto& text : texts) {
      SCOPED_TRACE(text);
      // LlamaTokenizer legacy=true loses one leading space (its decode strips the dummy prefix
      // twice: convert_tokens_to_string and SentencePiece), as the official tokenizer does.
      if (tokenizer.flavour() == TokenizerFlavour::kLlamaLegacy && text[0] == ' ') continue;
      const auto ids = tokenizer.encode(text, false);
      ASSERT_FALSE(ids.empty());
      EXPECT_EQ(tokenizer.decode(ids), text);
      DecodeOptions skip;
      skip.skip_special_tokens = true;
      EXPECT_EQ(tokenizer.decode(tokenizer.encode(text), skip), text);
      StreamDecoder stream(tokenizer);
      std::string streamed;
      for (const int64_t id : ids) streamed += stream.push(id);
      EXPECT_EQ(streamed + stream.flush(), text);
    }
  }
}

TEST(Tokenizer, StreamingEqualsFullDecodeOnRandomIds) {
  for (const auto& fixture : tokenizer_fixtures()) {
    SCOPED_TRACE(fixture);
    const Tokenizer tokenizer(fixture_path(fixture));
    std::mt19937_64 rng(1234);
    // Mostly low ids (bytes, short pieces, specials) to stress byte merging and spacing.
    std::uniform_int_distribution<int64_t> any(0, tokenizer.vocab_size() - 1);
    std::uniform_int_distribution<int64_t> low(0, std::min<int64_t>(300, tokenizer.vocab_size() - 1));
    std::vector<int64_t> punctuation;
    // Pieces that clean_up_tokenization reacts to (" .", " n't", " 's", ...).
    for (const char* p : {"\xE2\x96\x81", ".", ",", "'", "n", "t", "s", "m", "v", "e", "r", "?", "!",
                          "\xE2\x96\x81.", "\xE2\x96\x81'", "\xE2\x96\x81n", "'t", "'s", "'m", "'re", "'ve",
                          "\xE2\x96\x81,", "\xE2\x96\x81?"}) {
      if (auto id = tokenizer.find_token(p)) punctuation.push_back(*id);
    }
    // Short sequences, then long ones that exercise the decoder's checkpoints.
    for (int trial = 0; trial < 208; ++trial) {
      std::vector<int64_t> ids;
      const int length = trial < 200 ? 40 : 250;
      for (int i = 0; i < length; ++i) {
        const int kind = static_cast<int>(rng() % 3);
        if (kind == 0 && !punctuation.empty()) ids.push_back(punctuation[rng() % punctuation.size()]);
        else ids.push_back(kind == 1 ? low(rng) : any(rng));
      }
      for (const bool skip : {false, true}) {
        DecodeOptions options;
        options.skip_special_tokens = skip;
        StreamDecoder stream(tokenizer, options);
        std::string streamed;
        for (const int64_t id : ids) streamed += stream.push(id);
        streamed += stream.flush();
        ASSERT_TRUE(SameText(streamed, tokenizer.decode(ids, options))) << "trial " << trial << " skip " << skip;
      }
    }
  }
}

TEST(Tokenizer, StreamingHoldsBackIncompleteUtf8) {
  for (const auto& fixture : tokenizer_fixtures()) {
    SCOPED_TRACE(fixture);
    const Tokenizer tokenizer(fixture_path(fixture));
    // "猫" = E7 8C AB as byte pieces.
    std::vector<int64_t> ids;
    for (const char* piece : {"<0xE7>", "<0x8C>", "<0xAB>"}) {
      const auto id = tokenizer.find_token(piece);
      if (!id) GTEST_SKIP() << "no byte fallback pieces";
      ids.push_back(*id);
    }
    DecodeOptions options;
    options.skip_special_tokens = true;
    StreamDecoder stream(tokenizer, options);
    EXPECT_EQ(stream.push(ids[0]), "");
    EXPECT_EQ(stream.push(ids[1]), "");
    EXPECT_EQ(stream.push(ids[2]), "\xE7\x8C\xAB");
    EXPECT_EQ(stream.flush(), "");
    // An incomplete sequence at the end decodes to U+FFFD per byte.
    EXPECT_EQ(tokenizer.decode({ids[0], ids[1]}), "\xEF\xBF\xBD\xEF\xBF\xBD");
  }
}

TEST(Tokenizer, SkipSpecialTokensDropsThem) {
  for (const auto& fixture : tokenizer_fixtures()) {
    SCOPED_TRACE(fixture);
    const Tokenizer tokenizer(fixture_path(fixture));
    const auto text_ids = tokenizer.encode("hello", false);
    std::vector<int64_t> ids;
    for (const auto& special : tokenizer.special_tokens()) {
      const int64_t id = tokenizer.token_to_id(special);
      EXPECT_TRUE(tokenizer.is_special_id(id)) << special;
      ids.push_back(id);
    }
    ids.insert(ids.end(), text_ids.begin(), text_ids.end());
    DecodeOptions skip;
    skip.skip_special_tokens = true;
    EXPECT_EQ(tokenizer.decode(ids, skip), "hello");
  }
}

TEST(Tokenizer, AddedTokenWhitespaceFlags) {
  // rstrip / lstrip on an added token eat the whitespace next to it (PreTrainedTokenizer.tokenize).
  for (const auto& fixture : tokenizer_fixtures()) {
    const json config = internvl::testing::read_json(fixture_path(fixture) + "/tokenizer_config.json");
    if (!config.contains("added_tokens_decoder") || config["added_tokens_decoder"].empty()) continue;
    SCOPED_TRACE(fixture);
    TempDir dir;
    copy_tokenizer_files(fixture, dir);
    json patched = config;
    std::string chosen;
    for (auto& [id, token] : patched["added_tokens_decoder"].items()) {
      if (token["content"].get<std::string>() == "<img>") {
        token["rstrip"] = true;
        token["lstrip"] = true;
        chosen = "<img>";
      }
    }
    if (chosen.empty()) continue;
    write_bytes(dir.file("tokenizer_config.json"), patched.dump(2));
    const Tokenizer plain(fixture_path(fixture));
    const Tokenizer stripping(dir.path());
    EXPECT_EQ(stripping.tokenize("hello  \t" + chosen + "   world"), plain.tokenize("hello" + chosen + "world"));
    EXPECT_NE(plain.tokenize("hello  " + chosen + "   world"), plain.tokenize("hello" + chosen + "world"));
  }
}

TEST(Tokenizer, OptionsOverrideDetection) {
  for (const auto& fixture : tokenizer_fixtures()) {
    SCOPED_TRACE(fixture);
    TokenizerOptions options;
    options.add_bos_token = false;
    options.add_eos_token = true;
    const Tokenizer tokenizer(fixture_path(fixture), options);
    const auto ids = tokenizer.encode("hi");
    ASSERT_FALSE(ids.empty());
    EXPECT_NE(ids.front(), tokenizer.bos_id());
    EXPECT_EQ(ids.back(), tokenizer.eos_id());
  }
}

// ---- bad input ---------------------------------------------------------------------------------

TEST(TokenizerErrors, MissingModel) {
  const auto fixtures = tokenizer_fixtures();
  if (fixtures.empty()) GTEST_SKIP() << "no fixture tokenizer";
  TempDir dir;
  copy_tokenizer_files(fixtures.front(), dir);
  ::unlink(dir.file("tokenizer.model").c_str());
  expect_config_error_naming([&] { Tokenizer t(dir.path()); }, "tokenizer.model");
  expect_config_error_naming([&] { Tokenizer t(dir.path() + "/does-not-exist"); }, "tokenizer.model");
}

TEST(TokenizerErrors, CorruptModel) {
  const auto fixtures = tokenizer_fixtures();
  if (fixtures.empty()) GTEST_SKIP() << "no fixture tokenizer";
  TempDir dir;
  copy_tokenizer_files(fixtures.front(), dir);
  std::mt19937 rng(7);
  for (int trial = 0; trial < 5; ++trial) {
    std::string garbage(4096 + trial * 977, '\0');
    for (auto& c : garbage) c = static_cast<char>(rng());
    write_bytes(dir.file("tokenizer.model"), garbage);
    expect_config_error_naming([&] { Tokenizer t(dir.path()); }, "tokenizer.model");
  }
  write_bytes(dir.file("tokenizer.model"), "");
  expect_config_error_naming([&] { Tokenizer t(dir.path()); }, "tokenizer.model");
  const std::string real = read_bytes(fixture_path(fixtures.front()) + "/tokenizer.model");
  write_bytes(dir.file("tokenizer.model"), real.substr(0, real.size() / 2));
  expect_config_error_naming([&] { Tokenizer t(dir.path()); }, "tokenizer.model");
}

TEST(TokenizerErrors, MalformedJson) {
  for (const auto& fixture : tokenizer_fixtures()) {
    SCOPED_TRACE(fixture);
    for (const char* name : {"tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"}) {
      TempDir dir;
      copy_tokenizer_files(fixture, dir);
      write_bytes(dir.file(name), "{\"add_bos_token\": tru");
      expect_config_error_naming([&] { Tokenizer t(dir.path()); }, name);
      write_bytes(dir.file(name), "[1, 2, 3]");
      expect_config_error_naming([&] { Tokenizer t(dir.path()); }, name);
    }
    TempDir dir;
    copy_tokenizer_files(fixture, dir);
    json config = internvl::testing::read_json(fixture_path(fixture) + "/tokenizer_config.json");
    config["tokenizer_class"] = "Qwen2Tokenizer";
    write_bytes(dir.file("tokenizer_config.json"), config.dump());
    expect_config_error_naming([&] { Tokenizer t(dir.path()); }, "tokenizer_config.json");
    config = internvl::testing::read_json(fixture_path(fixture) + "/tokenizer_config.json");
    config["add_bos_token"] = "yes";
    write_bytes(dir.file("tokenizer_config.json"), config.dump());
    expect_config_error_naming([&] { Tokenizer t(dir.path()); }, "tokenizer_config.json");
    config = internvl::testing::read_json(fixture_path(fixture) + "/tokenizer_config.json");
    config["added_tokens_decoder"] = {{"not-an-id", {{"content", "<x>"}}}};
    write_bytes(dir.file("tokenizer_config.json"), config.dump());
    expect_config_error_naming([&] { Tokenizer t(dir.path()); }, "tokenizer_config.json");
  }
}

TEST(TokenizerErrors, BadIdsAndText) {
  for (const auto& fixture : tokenizer_fixtures()) {
    SCOPED_TRACE(fixture);
    const Tokenizer tokenizer(fixture_path(fixture));
    EXPECT_THROW(tokenizer.decode({tokenizer.vocab_size()}), InvalidArgument);
    EXPECT_THROW(tokenizer.decode({-1}), InvalidArgument);
    EXPECT_THROW(tokenizer.id_to_piece(tokenizer.vocab_size() + 100), InvalidArgument);
    EXPECT_NO_THROW(tokenizer.decode({tokenizer.vocab_size() - 1}));
    StreamDecoder stream(tokenizer);
    EXPECT_THROW(stream.push(tokenizer.vocab_size()), InvalidArgument);
    EXPECT_THROW(tokenizer.encode(std::string("bad \xC3\x28 utf8")), InvalidArgument);
    EXPECT_TRUE(tokenizer.decode({}).empty());
  }
}

}  // namespace
}  // namespace internvl::tokenizer
