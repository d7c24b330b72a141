// The byte-level BPE backend (Qwen2Tokenizer) against the fixtures: the full Qwen tokenizer's hard
// strings (qwen2-tokenizer), the Qwen2 / Qwen3 chat prompts and responses, streaming, and bad
// input. Every id, size and string comes from the fixture files.
#include <dirent.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <set>
#include <sstream>

#include "internvl/error.h"
#include "support/expect.h"
#include "support/files.h"
#include "support/fixtures.h"
#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace internvl::tokenizer {
namespace {

using internvl::testing::fixture_config;
using internvl::testing::fixture_path;
using internvl::testing::fixture_reference;
using internvl::testing::fixtures_with_architecture;
using nlohmann::json;

constexpr const char* kQwenTokenizer = "qwen2-tokenizer";

std::vector<int64_t> ids_of(const json& list) { return list.get<std::vector<int64_t>>(); }

bool readable(const std::string& path) { return ::access(path.c_str(), R_OK) == 0; }

using internvl::testing::read_bytes;
using internvl::testing::write_bytes;
// A fresh temporary directory for this test's files.
class TempDir : public internvl::testing::TempDir {
 public:
  TempDir() : internvl::testing::TempDir("bpe_tokenizer_test") {}
};

// Copies the given files of a fixture (those it has) into `dir`.
void copy_files(const std::string& fixture, const TempDir& dir, std::initializer_list<const char*> names) {
  for (const char* name : names) {
    const std::string source = fixture_path(fixture) + "/" + name;
    if (readable(source)) write_bytes(dir.file(name), read_bytes(source));
  }
}

::testing::AssertionResult SameText(const std::string& actual, const std::string& expected) {
  if (actual == expected) return ::testing::AssertionSuccess();
  size_t i = 0;
  while (i < actual.size() && i < expected.size() && actual[i] == expected[i]) ++i;
  const size_t from = i > 40 ? i - 40 : 0;
  return ::testing::AssertionFailure() << "texts differ at byte " << i << " (sizes " << actual.size() << " vs "
                                       << expected.size() << ")\n  actual:   \"" << actual.substr(from, 100)
                                       << "\"\n  expected: \"" << expected.substr(from, 100) << "\"";
}

::testing::AssertionResult SameIds(const std::vector<int64_t>& actual, const std::vector<int64_t>& expected) {
  if (actual == expected) return ::testing::AssertionSuccess();
  size_t i = 0;
  while (i < actual.size() && i < expected.size() && actual[i] == expected[i]) ++i;
  auto out = ::testing::AssertionFailure();
  out << "sizes " << actual.size() << " vs " << expected.size() << ", first difference at " << i;
  if (i < actual.size()) out << ": got " << actual[i];
  if (i < expected.size()) out << ", expected " << expected[i];
  return out;
}

using internvl::testing::expect_config_error_naming;

// The cases of reference.json with their input text.
struct Case {
  std::string name, text;
  json ref;
};

std::vector<Case> reference_cases(const json& ref) {
  std::map<std::string, std::string> texts;
  for (const auto& input : ref["inputs"]["cases_input"]) texts[input["name"]] = input["text"];
  std::vector<Case> out;
  for (const auto& c : ref["cases"]) out.push_back({c["name"], texts.at(c["name"]), c});
  return out;
}

// Streams `ids` one at a time: every partial output must be a prefix of the matching full decode,
// and pushes + flush must equal decode(ids).
void expect_streaming(const Tokenizer& tokenizer, const std::vector<int64_t>& ids, const DecodeOptions& options,
                      const json* prefix_decodes = nullptr) {
  StreamDecoder stream(tokenizer, options);
  const std::string full = tokenizer.decode(ids, options);
  std::string streamed;
  for (size_t k = 0; k < ids.size(); ++k) {
    streamed += stream.push(ids[k]);
    EXPECT_EQ(full.compare(0, streamed.size(), streamed), 0) << "after " << k + 1 << " ids";
    if (prefix_decodes != nullptr) {
      const std::string expected = (*prefix_decodes)[k].get<std::string>();
      EXPECT_EQ(expected.compare(0, streamed.size(), streamed), 0)
          << "after " << k + 1 << " ids the stream shows text decode(ids[:k]) does not start with";
    }
  }
  streamed += stream.flush();
  EXPECT_TRUE(SameText(streamed, full));
  StreamDecoder batch(tokenizer, options);
  std::string batched = batch.push(ids);  // (push before flush: operands of + are unsequenced)
  batched += batch.flush();
  EXPECT_TRUE(SameText(batched, full));
}

class QwenTokenizer : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!readable(fixture_path(kQwenTokenizer) + "/reference.json"))
      GTEST_SKIP() << "no " << kQwenTokenizer << " fixture in " << internvl::testing::fixtures_dir();
    ref_ = fixture_reference(kQwenTokenizer);
  }
  static const Tokenizer& tokenizer() {
    static const Tokenizer tok(fixture_path(kQwenTokenizer));
    return tok;
  }
  json ref_;
};

TEST_F(QwenTokenizer, LoadsWithTheReferenceProperties) {
  const auto start = std::chrono::steady_clock::now();
  const Tokenizer tok(fixture_path(kQwenTokenizer));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // Recorded, not asserted: a timing bound fails on a loaded machine (bench/ measures speed).
  RecordProperty("load_seconds", std::to_string(seconds));
  const json& info = ref_["tokenizer"];
  EXPECT_EQ(tok.flavour(), TokenizerFlavour::kQwen2Bpe);
  EXPECT_STREQ(to_string(tok.flavour()), "Qwen2Tokenizer");
  EXPECT_EQ(tok.vocab_size(), info["len_tokenizer"].get<int64_t>());
  EXPECT_EQ(tok.base_vocab_size(), info["vocab_size_regular"].get<int64_t>());
  EXPECT_EQ(tok.eos_id(), info["eos_token_id"].get<int64_t>());
  EXPECT_EQ(tok.eos_token(), info["eos_token"].get<std::string>());
  EXPECT_EQ(tok.pad_id(), info["pad_token_id"].get<int64_t>());
  EXPECT_EQ(tok.pad_token(), info["pad_token"].get<std::string>());
  EXPECT_EQ(tok.bos_id(), info["bos_token_id"].is_null() ? -1 : info["bos_token_id"].get<int64_t>());
  EXPECT_EQ(tok.unk_id(), info["unk_token_id"].is_null() ? -1 : info["unk_token_id"].get<int64_t>());
  EXPECT_FALSE(tok.add_bos_token());
  EXPECT_FALSE(tok.add_eos_token());

  const auto added = tok.added_tokens();
  ASSERT_EQ(added.size(), info["added_tokens"].size());
  for (size_t i = 0; i < added.size(); ++i) {
    const json& expected = info["added_tokens"][i];
    EXPECT_EQ(added[i].first, expected["id"].get<int64_t>());
    EXPECT_EQ(added[i].second.content, expected["content"].get<std::string>());
    EXPECT_EQ(added[i].second.special, expected["special"].get<bool>()) << expected["content"];
    EXPECT_EQ(tok.token_to_id(expected["content"].get<std::string>()), expected["id"].get<int64_t>());
    EXPECT_EQ(tok.id_to_piece(expected["id"].get<int64_t>()), expected["content"].get<std::string>());
  }
  const auto special_ids = info["all_special_ids_slow"].get<std::set<int64_t>>();
  std::set<int64_t> ours;
  for (int64_t id = 0; id < tok.vocab_size(); ++id)
    if (tok.is_special_id(id)) ours.insert(id);
  EXPECT_EQ(ours, special_ids);
  EXPECT_EQ(tok.special_tokens().size(), special_ids.size());
}

TEST_F(QwenTokenizer, EncodesEveryCaseLikeTheSlowTokenizer) {
  const Tokenizer& tok = tokenizer();
  const auto cases = reference_cases(ref_);
  ASSERT_EQ(cases.size(), ref_["summary"]["n_cases"].get<size_t>());
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const auto expected = ids_of(c.ref["ids_slow"]);
    EXPECT_TRUE(SameIds(tok.encode(c.text), expected));
    EXPECT_TRUE(SameIds(tok.encode(c.text, false), expected));  // nothing is added
    EXPECT_EQ(tok.tokenize(c.text), c.ref["tokens_slow"].get<std::vector<std::string>>());
    std::vector<std::string> pieces;
    for (const auto id : expected) pieces.push_back(tok.id_to_piece(id));
    EXPECT_EQ(pieces, c.ref["tokens_slow"].get<std::vector<std::string>>());
  }
}

TEST_F(QwenTokenizer, DecodesEveryCaseLikeTheSlowTokenizer) {
  const Tokenizer& tok = tokenizer();
  DecodeOptions skip;
  skip.skip_special_tokens = true;
  for (const auto& c : reference_cases(ref_)) {
    SCOPED_TRACE(c.name);
    const auto ids = ids_of(c.ref["ids_slow"]);
    EXPECT_TRUE(SameText(tok.decode(ids), c.ref["decode_slow"].get<std::string>()));
    EXPECT_TRUE(SameText(tok.decode(ids, skip), c.ref["decode_slow_skip_special"].get<std::string>()));
  }
}

TEST_F(QwenTokenizer, DecodesHandMadeIdSequences) {
  const Tokenizer& tok = tokenizer();
  DecodeOptions skip;
  skip.skip_special_tokens = true;
  ASSERT_EQ(ref_["id_sequences"].size(), ref_["summary"]["n_id_sequences"].get<size_t>());
  for (const auto& s : ref_["id_sequences"]) {
    SCOPED_TRACE(s["name"].get<std::string>());
    const auto ids = ids_of(s["ids"]);
    EXPECT_TRUE(SameText(tok.decode(ids), s["decode_slow"].get<std::string>()));
    EXPECT_TRUE(SameText(tok.decode(ids, skip), s["decode_slow_skip_special"].get<std::string>()));
    std::vector<std::string> pieces;
    for (const auto id : ids) pieces.push_back(tok.id_to_piece(id));
    EXPECT_EQ(pieces, s["tokens_slow"].get<std::vector<std::string>>());
    expect_streaming(tok, ids, {});
    expect_streaming(tok, ids, skip);
  }
}

TEST_F(QwenTokenizer, StreamsWithoutSplittingCharacters) {
  const Tokenizer& tok = tokenizer();
  size_t with_prefixes = 0;
  DecodeOptions skip;
  skip.skip_special_tokens = true;
  for (const auto& c : reference_cases(ref_)) {
    SCOPED_TRACE(c.name);
    const auto ids = ids_of(c.ref["ids_slow"]);
    if (c.ref.contains("prefix_decodes_slow")) {
      ++with_prefixes;
      ASSERT_EQ(c.ref["prefix_decodes_slow"].size(), ids.size());
      expect_streaming(tok, ids, {}, &c.ref["prefix_decodes_slow"]);
      // No partial output ever ends inside a character: each push is valid UTF-8 on its own.
      StreamDecoder stream(tok);
      for (const auto id : ids) {
        const std::string piece = stream.push(id);
        EXPECT_EQ(piece.find("\xEF\xBF\xBD"), std::string::npos) << "a U+FFFD escaped the stream";
      }
    } else {
      expect_streaming(tok, ids, {});
    }
    expect_streaming(tok, ids, skip);
  }
  EXPECT_GT(with_prefixes, 0u) << "no case has prefix_decodes_slow";
}

TEST_F(QwenTokenizer, RoundTripsToTheNfcText) {
  const Tokenizer& tok = tokenizer();
  for (const auto& c : reference_cases(ref_)) {
    SCOPED_TRACE(c.name);
    if (!c.ref.value("decode_equals_nfc_text", false)) continue;
    EXPECT_TRUE(SameText(tok.decode(tok.encode(c.text)), nfc_normalize(c.text)));
    EXPECT_EQ(nfc_normalize(c.text) != c.text, c.ref["text_changed_by_nfc"].get<bool>());
  }
}

TEST_F(QwenTokenizer, TokenizerJsonGivesTheSameTokenizer) {
  if (!readable(fixture_path(kQwenTokenizer) + "/tokenizer.json")) GTEST_SKIP() << "no tokenizer.json";
  TempDir dir;
  copy_files(kQwenTokenizer, dir, {"tokenizer.json", "tokenizer_config.json"});
  const auto start = std::chrono::steady_clock::now();
  const Tokenizer from_json(dir.path());
  RecordProperty("load_seconds",
                 std::to_string(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()));
  const Tokenizer& tok = tokenizer();
  EXPECT_EQ(from_json.vocab_size(), tok.vocab_size());
  EXPECT_EQ(from_json.base_vocab_size(), tok.base_vocab_size());
  EXPECT_EQ(from_json.eos_id(), tok.eos_id());
  for (const auto& c : reference_cases(ref_)) {
    SCOPED_TRACE(c.name);
    const auto ids = ids_of(c.ref["ids_slow"]);
    EXPECT_TRUE(SameIds(from_json.encode(c.text), ids));
    EXPECT_TRUE(SameText(from_json.decode(ids), c.ref["decode_slow"].get<std::string>()));
  }
  // Without tokenizer_config.json the added tokens come from tokenizer.json.
  TempDir bare;
  copy_files(kQwenTokenizer, bare, {"tokenizer.json"});
  const Tokenizer json_only(bare.path());
  EXPECT_EQ(json_only.vocab_size(), tok.vocab_size());
  for (const auto& [id, token] : tok.added_tokens()) EXPECT_EQ(json_only.token_to_id(token.content), id);
}

TEST_F(QwenTokenizer, LongAndDegenerateTexts) {
  const Tokenizer& tok = tokenizer();
  for (const std::string& text : {std::string(100000, ' '), std::string(50000, '\n'), std::string(20000, 'a'),
                                  std::string(30000, '7'), std::string(10000, '!') + std::string(10000, ' ') + "x"}) {
    SCOPED_TRACE(text.substr(0, 1) + " x " + std::to_string(text.size()));
    const auto ids = tok.encode(text);
    EXPECT_FALSE(ids.empty());
    EXPECT_TRUE(SameText(tok.decode(ids), text));
  }
  EXPECT_TRUE(tok.encode("").empty());
  EXPECT_EQ(tok.decode({}), "");
}

TEST_F(QwenTokenizer, RejectsBadIdsAndText) {
  const Tokenizer& tok = tokenizer();
  EXPECT_THROW(tok.decode({tok.vocab_size()}), InvalidArgument);
  EXPECT_THROW(tok.decode({-1}), InvalidArgument);
  EXPECT_THROW(tok.id_to_piece(tok.vocab_size() + 100), InvalidArgument);
  StreamDecoder stream(tok);
  EXPECT_THROW(stream.push(tok.vocab_size()), InvalidArgument);
  for (const std::string bad : {std::string("bad \xC3\x28 utf8"), std::string("\xED\xA0\x80"),  // surrogate
                                std::string("\xC0\xAF"), std::string("tail \xE4\xBD")}) {
    EXPECT_THROW(tok.encode(bad), InvalidArgument);
    EXPECT_THROW(tok.tokenize(bad), InvalidArgument);
  }
}

TEST_F(QwenTokenizer, PreTokenizerWhitespaceIsPythonsRegexWhitespace) {
  // Python's `regex` \s is Unicode White_Space; PCRE2's would add U+180E. "!" c "!" is three
  // pre-tokens when c is whitespace, one when c is neither whitespace, letter nor number
  // (expectations checked with Python's regex.findall on the Qwen pattern).
  const auto* bpe = dynamic_cast<const BpeTokenizer*>(&tokenizer().backend());
  ASSERT_NE(bpe, nullptr);
  const std::vector<char32_t> white = {0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2000, 0x2005,
                                       0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000};
  const std::vector<char32_t> not_white = {0x1C, 0x1D, 0x1E, 0x1F, 0x180E, 0x200B, 0x200D, 0xFEFF, 0x2060};
  const auto utf8 = [](char32_t c) {
    std::string s;
    if (c < 0x80) {
      s += static_cast<char>(c);
    } else if (c < 0x800) {
      s += static_cast<char>(0xC0 | (c >> 6));
      s += static_cast<char>(0x80 | (c & 0x3F));
    } else {
      s += static_cast<char>(0xE0 | (c >> 12));
      s += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (c & 0x3F));
    }
    return s;
  };
  for (const char32_t c : white) {
    if (c == 0x0A || c == 0x0D) continue;  // [\r\n]* joins them to the "!" before
    // " ?[^\s...]+" takes a plain space along with the second "!".
    EXPECT_EQ(bpe->pre_tokenize("!" + utf8(c) + "!").size(), c == 0x20 ? 2u : 3u) << std::hex << static_cast<uint32_t>(c);
  }
  for (const char32_t c : not_white)
    EXPECT_EQ(bpe->pre_tokenize("!" + utf8(c) + "!").size(), 1u) << std::hex << static_cast<uint32_t>(c);
  // \s+(?!\S): a run of spaces before a word leaves its last space to the word.
  EXPECT_EQ(bpe->pre_tokenize("a   b"), (std::vector<std::string>{"a", "  ", " b"}));
  EXPECT_EQ(bpe->pre_tokenize("a   "), (std::vector<std::string>{"a", "   "}));
  EXPECT_EQ(bpe->pre_tokenize("x 12"), (std::vector<std::string>{"x", " ", "1", "2"}));
  EXPECT_EQ(bpe->pre_tokenize("IT'S"), (std::vector<std::string>{"IT", "'S"}));
}

TEST(Utf8Replace, FollowsPythonErrorsReplace) {
  // bytes.decode("utf-8", errors="replace") of hand-checked byte strings.
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(decode_utf8_replace("abc"), "abc");
  EXPECT_EQ(decode_utf8_replace("\xE4\xBD"), r);                        // truncated: one U+FFFD
  EXPECT_EQ(decode_utf8_replace("\xE4\xBD" "a"), r + "a");
  EXPECT_EQ(decode_utf8_replace("\x80\x80"), r + r);                    // lone continuations
  EXPECT_EQ(decode_utf8_replace("\xC0\xAF"), r + r);                    // overlong lead
  EXPECT_EQ(decode_utf8_replace("\xED\xA0\x80"), r + r + r);            // surrogate
  EXPECT_EQ(decode_utf8_replace("\xF4\x90\x80\x80"), r + r + r + r);    // > U+10FFFF
  EXPECT_EQ(decode_utf8_replace("\xF0\x9F\x98"), r);
  EXPECT_EQ(decode_utf8_replace("\xF0\x9F\x98\x80"), "\xF0\x9F\x98\x80");
  EXPECT_EQ(incomplete_utf8_tail("a\xF0\x9F\x98"), 3u);
  EXPECT_EQ(incomplete_utf8_tail("a\xE4"), 1u);
  EXPECT_EQ(incomplete_utf8_tail("a\xED\xA0"), 0u);  // can never complete
  EXPECT_EQ(incomplete_utf8_tail("\xF0\x9F\x98\x80"), 0u);
}

// ---- the Qwen chat fixtures --------------------------------------------------------------------

std::vector<std::string> bpe_chat_fixtures() {
  std::vector<std::string> out;
  for (const auto& name : fixtures_with_architecture("InternVLChatModel"))
    if (readable(fixture_path(name) + "/vocab.json")) out.push_back(name);
  return out;
}

TEST(QwenChatTokenizer, PromptsEncodeToTheReferenceIds) {
  const auto fixtures = bpe_chat_fixtures();
  if (fixtures.empty()) GTEST_SKIP() << "no Qwen chat fixture";
  for (const auto& name : fixtures) {
    SCOPED_TRACE(name);
    const json ref = fixture_reference(name);
    const Tokenizer tok(fixture_path(name));
    EXPECT_EQ(tok.flavour(), TokenizerFlavour::kQwen2Bpe);
    EXPECT_EQ(tok.vocab_size(), ref["tokenizer"]["len_tokenizer"].get<int64_t>());
    EXPECT_EQ(tok.base_vocab_size(), ref["tokenizer"]["regular_tokens"].get<int64_t>());
    const auto special_ids = ref["tokenizer"]["all_special_ids"].get<std::set<int64_t>>();
    for (int64_t id = 0; id < tok.vocab_size(); ++id) EXPECT_EQ(tok.is_special_id(id), special_ids.count(id) != 0) << id;
    const json summary = ref["config_summary"];
    EXPECT_EQ(tok.token_to_id("<IMG_CONTEXT>"), summary["img_context_token_id"].get<int64_t>());
    for (const auto& conv : ref["inputs"]["conversations"]) {
      SCOPED_TRACE(conv["key"].get<std::string>());
      EXPECT_TRUE(SameIds(tok.encode(conv["prompt"].get<std::string>()), ids_of(conv["input_ids"])));
    }
  }
}

TEST(QwenChatTokenizer, GeneratedIdsDecodeToTheResponse) {
  const auto fixtures = bpe_chat_fixtures();
  if (fixtures.empty()) GTEST_SKIP() << "no Qwen chat fixture";
  for (const auto& name : fixtures) {
    SCOPED_TRACE(name);
    const json ref = fixture_reference(name);
    const json config = fixture_config(name);
    const Tokenizer tok(fixture_path(name));
    const auto& conversation = get_conversation_template(config["template"].get<std::string>());
    // README 6.5: internvl_chat skips special tokens, the InternVL3.5 (gpt_oss) code does not.
    const std::string how = ref["generation"]["response_decode"].get<std::string>();
    ASSERT_TRUE(how.find("skip_special_tokens=") != std::string::npos) << how;
    DecodeOptions options;
    options.skip_special_tokens = how.find("skip_special_tokens=True") != std::string::npos;
    for (const auto& conv : ref["inputs"]["conversations"]) {
      SCOPED_TRACE(conv["key"].get<std::string>());
      const auto generated = ids_of(conv["generated_ids"]);
      const std::string decoded = tok.decode(generated, options);
      EXPECT_EQ(extract_response(conversation, decoded), conv["response"].get<std::string>());
      std::vector<std::string> pieces;
      for (const auto id : generated) pieces.push_back(tok.id_to_piece(id));
      EXPECT_EQ(pieces, conv["generated_tokens"].get<std::vector<std::string>>());
      expect_streaming(tok, generated, options);
      std::vector<int64_t> all = ids_of(conv["input_ids"]);
      all.insert(all.end(), generated.begin(), generated.end());
      expect_streaming(tok, all, {});
    }
  }
}

// ---- bad files ---------------------------------------------------------------------------------

class BpeTokenizerFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto fixtures = bpe_chat_fixtures();
    if (fixtures.empty()) GTEST_SKIP() << "no Qwen chat fixture";
    fixture_ = fixtures.front();
    copy_files(fixture_, dir_, {"vocab.json", "merges.txt", "tokenizer_config.json", "added_tokens.json",
                                "special_tokens_map.json"});
  }
  std::string fixture_;
  TempDir dir_;
};

TEST_F(BpeTokenizerFiles, FindsTheBackendFromTheFiles) {
  EXPECT_TRUE(Tokenizer::has_tokenizer_files(dir_.path()));
  EXPECT_EQ(Tokenizer(dir_.path()).flavour(), TokenizerFlavour::kQwen2Bpe);
  TempDir empty;
  EXPECT_FALSE(Tokenizer::has_tokenizer_files(empty.path()));
  write_bytes(empty.file("vocab.json"), "{}");
  EXPECT_FALSE(Tokenizer::has_tokenizer_files(empty.path())) << "vocab.json without merges.txt";
  EXPECT_THROW(Tokenizer{empty.path()}, ConfigError);
}

TEST_F(BpeTokenizerFiles, MalformedVocabJson) {
  for (const std::string bad : {std::string("{\"a\": 1,"), std::string("[1, 2]"), std::string("{\"a\": \"x\"}"),
                                std::string("{\"a\": -3}"), std::string("{}"), std::string("{\"a\": 0}")}) {
    SCOPED_TRACE(bad);
    write_bytes(dir_.file("vocab.json"), bad);
    expect_config_error_naming([&] { Tokenizer t(dir_.path()); }, "vocab.json");
  }
}

TEST_F(BpeTokenizerFiles, MalformedMergesTxt) {
  const std::string merges = read_bytes(dir_.file("merges.txt"));
  for (const std::string bad : {merges + "onlyone\n", merges + "a b c\n", std::string("\xFF\xFE bad\n")}) {
    write_bytes(dir_.file("merges.txt"), bad);
    expect_config_error_naming([&] { Tokenizer t(dir_.path()); }, "merges.txt");
  }
  // A merge whose result is not in the vocabulary cannot be a byte-level BPE.
  write_bytes(dir_.file("merges.txt"), "#version: 0.2\nq \xC4\xA0\n");  // "qĠ"
  expect_config_error_naming([&] { Tokenizer t(dir_.path()); }, "merges.txt");
}

TEST_F(BpeTokenizerFiles, MalformedTokenizerJson) {
  TempDir dir;
  const std::string vocab = read_bytes(dir_.file("vocab.json"));
  for (const std::string bad :
       {std::string("{\"model\": "), std::string("[]"), std::string("{\"model\": {\"type\": \"WordPiece\"}}"),
        "{\"model\": {\"vocab\": " + vocab + ", \"merges\": [\"x\"]}}",
        "{\"model\": {\"vocab\": " + vocab + ", \"merges\": [[\"a\"]]}}",
        "{\"model\": {\"vocab\": " + vocab + "}}", std::string("{\"model\": {\"vocab\": [], \"merges\": []}}"),
        "{\"model\": {\"vocab\": " + vocab + ", \"merges\": [1]}}",
        "{\"model\": {\"vocab\": " + vocab + ", \"merges\": [[\"a\", 2]]}}",
        "{\"model\": {\"vocab\": " + vocab + ", \"merges\": {}}}",
        std::string("{\"model\": {\"vocab\": {\"a\": \"x\"}, \"merges\": []}}"), std::string("{\"model\": 3}"),
        "{\"model\": {\"vocab\": " + vocab + ", \"merges\": []}, \"added_tokens\": 5}",
        "{\"model\": {\"vocab\": " + vocab + ", \"merges\": []}, \"added_tokens\": [{\"content\": \"x\"}]}"}) {
    SCOPED_TRACE(bad.substr(0, 60));
    write_bytes(dir.file("tokenizer.json"), bad);
    expect_config_error_naming([&] { Tokenizer t(dir.path()); }, "tokenizer.json");
  }
}

TEST_F(BpeTokenizerFiles, UnsupportedClassAndErrorsValue) {
  const std::string config = read_bytes(dir_.file("tokenizer_config.json"));
  json parsed = json::parse(config);
  parsed["tokenizer_class"] = "GPT2Tokenizer";
  write_bytes(dir_.file("tokenizer_config.json"), parsed.dump());
  expect_config_error_naming([&] { Tokenizer t(dir_.path()); }, "tokenizer_config.json");
  parsed = json::parse(config);
  parsed["errors"] = "surrogateescape";
  write_bytes(dir_.file("tokenizer_config.json"), parsed.dump());
  expect_config_error_naming([&] { Tokenizer t(dir_.path()); }, "tokenizer_config.json");
}

}  // namespace
}  // namespace internvl::tokenizer
