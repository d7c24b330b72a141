// The internvl-chat example tool, run as a user would (a child process), against the official
// chat() references of every InternVLChatModel fixture: one-shot answers with --dump (prompt
// ids, greedy ids, first-step logits), multi-turn conversations through a stdin pipe, the
// conversation commands, exit codes.
#include <ATen/ATen.h>
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "internvl/version.h"
#include "io/tensor_convert.h"
#include "support/fixtures.h"
#include "support/tool_runner.h"
#include "tokenizer/text_util.h"


using internvl::testing::AllCloseToReference;
using internvl::testing::reference_tensor;
using internvl::testing::TensorsEqual;
using nlohmann::json;

namespace {

using internvl::testing::describe;
using internvl::testing::is_executable;
using internvl::testing::read_file;
using internvl::testing::ToolRun;

// The tool is built next to the tests; $INTERNVL_CHAT_TOOL overrides.
std::string directory_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

std::string tool_path() { return internvl::testing::example_tool_path("INTERNVL_CHAT_TOOL", "examples/chat/internvl-chat"); }

void write_file(const std::string& path, const std::string& bytes) {
  ASSERT_TRUE(internvl::testing::write_file(path, bytes)) << path;
}

std::string temp_path(const std::string& what) { return internvl::testing::unique_temp_path("chat_tool", what); }

ToolRun run_tool(const std::vector<std::string>& args, const std::optional<std::string>& input = std::nullopt) {
  return internvl::testing::run_tool(tool_path(), args, input);
}

bool contains(const std::string& haystack, const std::string& needle) { return haystack.find(needle) != std::string::npos; }

// A question as one logical REPL line: newlines become '\'-continued lines, and a question that
// starts with '/' is escaped as "//...".
std::string repl_line(const std::string& question) {
  std::string line = question.rfind('/', 0) == 0 ? "/" : "";
  for (const char c : question) {
    if (c == '\n') line += "\\\n";
    else line += c;
  }
  return line + "\n";
}

// `--image FILE` for every image of the conversation, in prompt order.
std::vector<std::string> image_args(const json& conv) {
  std::vector<std::string> args;
  for (const auto& file : internvl::testing::conversation_images(conv)) {
    args.insert(args.end(), {"--image", internvl::testing::images_dir() + "/" + file});
  }
  return args;
}

bool has_image(const json& conv) { return !internvl::testing::conversation_images(conv).empty(); }
bool has_one_image(const json& conv) { return internvl::testing::conversation_images(conv).size() == 1; }
std::string image_file(const json& conv) {
  return internvl::testing::images_dir() + "/" + internvl::testing::conversation_images(conv).at(0);
}
bool has_history(const json& conv) {
  return conv.contains("history_in") && conv.at("history_in").is_array() && !conv.at("history_in").empty();
}

// Expects `needles` to appear in `text` in this order, without overlapping.
void expect_in_order(const std::string& text, const std::vector<std::string>& needles, const std::string& context) {
  std::size_t from = 0;
  for (const auto& needle : needles) {
    const auto at = text.find(needle, from);
    ASSERT_NE(at, std::string::npos) << "missing (in order) '" << needle << "'\n" << context;
    from = at + needle.size();
  }
}


class ChatTool : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!is_executable(tool_path())) GTEST_SKIP() << "internvl-chat not built (looked for " << tool_path() << ")";
    fixture_ = GetParam();
    model_dir_ = internvl::testing::fixture_path(fixture_);
    reference_ = internvl::testing::fixture_reference(fixture_);
    max_new_tokens_ = std::to_string(reference_.at("generation").at("max_new_tokens").get<int>());
    for (const auto& conv : reference_.at("inputs").at("conversations")) conversations_.push_back(conv);
  }

  // The first conversation matching `want`, or null.
  template <typename Predicate>
  const json* find_conversation(Predicate want) const {
    for (const auto& conv : conversations_)
      if (want(conv)) return &conv;
    return nullptr;
  }

  std::vector<std::string> base_args(const std::string& dump) const {
    std::vector<std::string> args = {"--model", model_dir_, "--greedy", "--max-new-tokens", max_new_tokens_};
    if (!dump.empty()) {
      args.push_back("--dump");
      args.push_back(dump);
    }
    return args;
  }

  // The dump holds exactly the official chat()'s prompt ids, greedy ids and first-step logits.
  void expect_dump_matches(const std::string& path, const json& conv) const {
    const std::string key = "conv." + conv.at("key").get<std::string>() + ".";
    internvl::io::SafetensorsFile file(path);
    EXPECT_EQ(file.names(), (std::vector<std::string>{"first_logits", "input_ids", "output_ids"}));
    EXPECT_EQ(file.tensor("input_ids").dtype, internvl::io::DType::I64);
    EXPECT_EQ(file.tensor("output_ids").dtype, internvl::io::DType::I64);
    EXPECT_EQ(file.tensor("first_logits").dtype, internvl::io::DType::F32);
    const auto input_ids = internvl::io::to_tensor(file.tensor("input_ids"), at::kLong);
    const auto output_ids = internvl::io::to_tensor(file.tensor("output_ids"), at::kLong);
    const auto first_logits = internvl::io::to_tensor(file.tensor("first_logits"), at::kFloat);
    EXPECT_TRUE(TensorsEqual(input_ids, reference_tensor(fixture_, key + "input_ids"))) << key;
    const auto json_ids = conv.at("input_ids").get<std::vector<int64_t>>();
    EXPECT_TRUE(TensorsEqual(input_ids, at::tensor(json_ids, at::kLong))) << key << " (reference.json)";
    EXPECT_TRUE(TensorsEqual(output_ids, reference_tensor(fixture_, key + "generated_ids"))) << key;
    EXPECT_TRUE(AllCloseToReference(first_logits, reference_tensor(fixture_, key + "last_prompt_logits"))) << key;
  }

  std::string fixture_, model_dir_, max_new_tokens_;
  json reference_;
  std::vector<json> conversations_;
};

// ---- one-shot ---------------------------------------------------------------------------------

TEST_P(ChatTool, OneShotMatchesOfficialChat) {
  int checked = 0;
  for (const auto& conv : conversations_) {
    if (has_history(conv)) continue;
    SCOPED_TRACE(conv.at("key").get<std::string>());
    const std::string dump = temp_path("oneshot.safetensors");
    auto args = base_args(dump);
    for (const auto& arg : image_args(conv)) args.push_back(arg);
    args.insert(args.end(), {"--prompt", conv.at("question").get<std::string>()});
    const ToolRun run = run_tool(args);
    ASSERT_EQ(run.status, 0) << describe(run);
    EXPECT_TRUE(contains(run.out, conv.at("response").get<std::string>())) << describe(run);
    ASSERT_FALSE(run.out.empty());
    EXPECT_EQ(run.out.back(), '\n');
    expect_dump_matches(dump, conv);
    // Written atomically: no temporary file is left beside the dump.
    const std::string dir = directory_of(dump), base = dump.substr(dir.size() + 1);
    if (DIR* d = ::opendir(dir.c_str())) {
      while (const dirent* entry = ::readdir(d))
        EXPECT_NE(std::string(entry->d_name).rfind("." + base + ".", 0), 0u) << "left over " << entry->d_name;
      ::closedir(d);
    }
    ::unlink(dump.c_str());
    ++checked;
  }
  if (checked == 0) GTEST_SKIP() << fixture_ << " has no conversation without history";
}

// ---- --batch -----------------------------------------------------------------------------------

// Every reference question (no history) as a JSON line, with bad lines among them: the good ones
// get the official greedy answers, in input order; each bad one an error naming its line.
TEST_P(ChatTool, BatchFileAnswersEveryLineInOrder) {
  std::vector<const json*> asked;
  std::string input;
  std::vector<std::string> kinds;  // "ok" (reference), "bad"
  const int max_new = std::stoi(max_new_tokens_);
  for (const auto& conv : conversations_) {
    if (has_history(conv)) continue;
    json line = {{"id", conv.at("key")}, {"question", conv.at("question")}, {"max_new_tokens", max_new}};
    line["images"] = json::array();
    for (const auto& file : internvl::testing::conversation_images(conv)) line["images"].push_back(internvl::testing::images_dir() + "/" + file);
    input += line.dump() + "\n";
    asked.push_back(&conv);
    kinds.push_back("ok");
    if (kinds.size() == 1) {
      input += "{not json\n";
      kinds.push_back("bad");
      input += json({{"id", 7}, {"question", "hi"}, {"max_new_token", 3}}).dump() + "\n";  // misspelt field
      kinds.push_back("bad");
      input += json({{"id", "gone"}, {"question", "hi"}, {"images", {"/nonexistent/x.jpg"}}}).dump() + "\n";
      kinds.push_back("bad");
      input += "\n";  // blank lines are skipped
    }
  }
  if (asked.empty()) GTEST_SKIP() << fixture_ << " has no conversation without history";
  const std::string in = temp_path("batch_in.jsonl"), out = temp_path("batch_out.jsonl");
  write_file(in, input);
  const ToolRun run = run_tool({"--model", model_dir_, "--batch", in, "--output", out, "--max-batch-size", "3"});
  EXPECT_EQ(run.status, 1) << describe(run);  // some lines failed
  EXPECT_TRUE(contains(run.err, std::to_string(kinds.size()) + " request(s), 3 error(s)")) << describe(run);
  std::istringstream lines(read_file(out));
  std::string text;
  size_t row = 0, good = 0;
  while (std::getline(lines, text)) {
    ASSERT_LT(row, kinds.size()) << text;
    const auto line = json::parse(text);
    if (kinds[row] == "ok") {
      const auto& conv = *asked[good++];
      SCOPED_TRACE(conv.at("key").get<std::string>());
      EXPECT_EQ(line.at("id"), conv.at("key"));
      EXPECT_FALSE(line.contains("error")) << text;
      EXPECT_EQ(line.at("output_ids").get<std::vector<int64_t>>(), conv.at("generated_ids").get<std::vector<int64_t>>());
      EXPECT_EQ(line.at("response"), conv.at("response"));
      EXPECT_EQ(line.at("finish_reason"), conv.at("stopped_on_eos").get<bool>() ? "end_of_turn" : "length");
    } else {
      ASSERT_TRUE(line.contains("error")) << text;
      EXPECT_TRUE(contains(line.at("error").get<std::string>(), "line " + std::to_string(row + 1))) << text;
      EXPECT_FALSE(line.contains("response"));
    }
    ++row;
  }
  EXPECT_EQ(row, kinds.size());
  // The error lines name what is wrong in user terms.
  const auto all = read_file(out);
  EXPECT_TRUE(contains(all, "unknown field 'max_new_token'")) << all;
  EXPECT_TRUE(contains(all, "/nonexistent/x.jpg")) << all;
  ::unlink(out.c_str());

  // Only good lines: exit 0, the answers on stdout.
  std::string good_input;
  for (const auto* conv : asked) {
    if (!internvl::testing::conversation_images(*conv).empty()) continue;
    good_input += json({{"id", conv->at("key")}, {"question", conv->at("question")}, {"max_new_tokens", max_new}}).dump() + "\n";
  }
  if (!good_input.empty()) {
    write_file(in, good_input);
    const ToolRun ok = run_tool({"--model", model_dir_, "--batch", in});
    EXPECT_EQ(ok.status, 0) << describe(ok);
    EXPECT_TRUE(contains(ok.out, "\"output_ids\"")) << describe(ok);
  }
  ::unlink(in.c_str());
}

// Several images in the REPL without placeholders: the tool labels them "Image-k: <image>\n" as
// the official README does, so a reference multi-image conversation in that form, asked without
// those lines, gives the same prompt ids and answer.
TEST_P(ChatTool, SeveralImagesInTheReplGetTheReadmeLabels) {
  int checked = 0;
  for (const auto& conv : conversations_) {
    const auto images = internvl::testing::conversation_images(conv);
    if (has_history(conv) || images.size() < 2) continue;
    std::string question = conv.at("question").get<std::string>(), labels;
    for (size_t i = 0; i < images.size(); ++i) labels += "Image-" + std::to_string(i + 1) + ": <image>\n";
    if (question.rfind(labels, 0) != 0) continue;
    SCOPED_TRACE(conv.at("key").get<std::string>());
    std::string input;
    for (const auto& file : images) input += "/image " + internvl::testing::images_dir() + "/" + file + "\n";
    input += repl_line(question.substr(labels.size()));
    const std::string dump = temp_path("labels.safetensors");
    const ToolRun run = run_tool(base_args(dump), input);
    ASSERT_EQ(run.status, 0) << describe(run);
    EXPECT_TRUE(contains(run.out, conv.at("response").get<std::string>())) << describe(run);
    expect_dump_matches(dump, conv);
    ::unlink(dump.c_str());
    ++checked;
  }
  if (checked == 0) GTEST_SKIP() << fixture_ << " has no multi-image conversation in the README form";
}

// --greedy wins over sampling flags; a fixed --seed makes sampling reproducible.
TEST_P(ChatTool, GreedyOverridesSamplingAndSeedsReproduce) {
  const json* conv = find_conversation([](const json& c) { return !has_history(c) && !has_image(c); });
  if (conv == nullptr) GTEST_SKIP() << fixture_ << " has no text-only conversation";
  const std::string question = conv->at("question").get<std::string>();
  const std::string dump = temp_path("greedy.safetensors");
  auto args = base_args(dump);
  args.insert(args.end(), {"--temperature", "0.7", "--top-k", "5", "--prompt", question});
  const ToolRun greedy = run_tool(args);
  ASSERT_EQ(greedy.status, 0) << describe(greedy);
  expect_dump_matches(dump, *conv);

  std::vector<std::string> sampled_outputs;
  for (int i = 0; i < 2; ++i) {
    const ToolRun run = run_tool({"--model", model_dir_, "--max-new-tokens", max_new_tokens_, "--temperature", "1.5",
                                  "--seed", "1234", "--prompt", question});
    ASSERT_EQ(run.status, 0) << describe(run);
    sampled_outputs.push_back(run.out);
  }
  EXPECT_EQ(sampled_outputs[0], sampled_outputs[1]);
  ::unlink(dump.c_str());
}

// The flags llama.cpp users reach for: -m / -p / -n, --temperature 0 (= greedy), --temp, --stop,
// --device cuda:N (a runtime error here, without a GPU: exit 1, not a usage error).
TEST_P(ChatTool, ShortFlagsGreedyTemperatureZeroAndStop) {
  const json* conv = find_conversation([](const json& c) { return !has_history(c) && !has_image(c); });
  if (conv == nullptr) GTEST_SKIP() << fixture_ << " has no text-only conversation";
  const std::string question = conv->at("question").get<std::string>();
  const std::string response = conv->at("response").get<std::string>();
  const std::string dump = temp_path("short.safetensors");
  ToolRun run = run_tool({"-m", model_dir_, "-n", max_new_tokens_, "--temperature", "0", "--dump", dump, "-p", question});
  ASSERT_EQ(run.status, 0) << describe(run);
  EXPECT_TRUE(contains(run.out, response)) << describe(run);
  expect_dump_matches(dump, *conv);
  ::unlink(dump.c_str());
  run = run_tool({"-m", model_dir_, "-n", max_new_tokens_, "--temp", "0", "-p", question});
  ASSERT_EQ(run.status, 0) << describe(run);
  EXPECT_TRUE(contains(run.out, response)) << describe(run);
  // --stop ends the answer before the stop string.
  if (response.size() >= 8) {
    const std::string stop = response.substr(response.size() / 2, 3);
    const std::string before = response.substr(0, response.find(stop));
    run = run_tool({"-m", model_dir_, "-n", max_new_tokens_, "--stop", stop, "-p", question});
    ASSERT_EQ(run.status, 0) << describe(run);
    EXPECT_FALSE(contains(run.out, stop)) << describe(run);
    EXPECT_TRUE(contains(run.out, std::string(internvl::tokenizer::python_strip(before)))) << describe(run);
  }
  if (!at::hasCUDA()) {
    run = run_tool({"-m", model_dir_, "--device", "cuda:1", "-p", question});
    EXPECT_EQ(run.status, 1) << describe(run);
    EXPECT_TRUE(contains(run.err, "cuda")) << describe(run);
  }
}

// ---- conversations through a pipe -------------------------------------------------------------

TEST_P(ChatTool, MultiTurnConversationMatchesOfficialChat) {
  int checked = 0;
  for (const auto& conv : conversations_) {
    if (!has_history(conv)) continue;
    SCOPED_TRACE(conv.at("key").get<std::string>());
    const std::string dump = temp_path("multiturn.safetensors");
    auto args = base_args(dump);
    for (const auto& arg : image_args(conv)) args.push_back(arg);
    std::string input;
    std::vector<std::string> answers;
    for (const auto& turn : conv.at("history_in")) {
      input += repl_line(turn.at(0).get<std::string>());
      answers.push_back(turn.at(1).get<std::string>());  // the tool must produce these itself
    }
    input += repl_line(conv.at("question").get<std::string>());
    answers.push_back(conv.at("response").get<std::string>());
    const ToolRun run = run_tool(args, input);
    ASSERT_EQ(run.status, 0) << describe(run);
    EXPECT_FALSE(contains(run.err, "error:")) << describe(run);
    EXPECT_FALSE(contains(run.out, "> ")) << "no prompt when stdin is not a terminal\n" << describe(run);
    expect_in_order(run.out, answers, describe(run));
    expect_dump_matches(dump, conv);  // the last turn: history + images as the official chat()
    ::unlink(dump.c_str());
    ++checked;
  }
  if (checked == 0) GTEST_SKIP() << fixture_ << " has no conversation with history";
}

// /reset forgets the history and the images: the next question is a fresh text-only chat.
// /quit stops reading (the question after it is never asked).
TEST_P(ChatTool, ResetAndQuit) {
  const json* with_image = find_conversation([](const json& c) { return !has_history(c) && has_one_image(c); });
  const json* text_only = find_conversation([](const json& c) { return !has_history(c) && !has_image(c); });
  if (with_image == nullptr || text_only == nullptr) GTEST_SKIP() << fixture_ << " lacks the conversations needed";
  const std::string dump = temp_path("reset.safetensors");
  auto args = base_args(dump);
  args.insert(args.end(), {"--image", image_file(*with_image)});
  const std::string input = repl_line(with_image->at("question").get<std::string>()) + "/help\n/reset\n" +
                            repl_line(text_only->at("question").get<std::string>()) + "/quit\n" +
                            repl_line(with_image->at("question").get<std::string>());
  const ToolRun run = run_tool(args, input);
  ASSERT_EQ(run.status, 0) << describe(run);
  EXPECT_FALSE(contains(run.err, "error:")) << describe(run);
  EXPECT_TRUE(contains(run.err, "/image")) << "/help lists the commands\n" << describe(run);
  expect_in_order(run.out,
                  {with_image->at("response").get<std::string>(), text_only->at("response").get<std::string>()},
                  describe(run));
  expect_dump_matches(dump, *text_only);  // the last turn asked is the one after /reset
  ::unlink(dump.c_str());
}

// /image adds an image to the next question ("<image>\n" prepended when the question has none);
// a path that cannot be read is an error and the conversation goes on.
TEST_P(ChatTool, ImageCommand) {
  const json* with_image = find_conversation([](const json& c) { return !has_history(c) && has_one_image(c); });
  if (with_image == nullptr) GTEST_SKIP() << fixture_ << " has no image conversation without history";
  std::string question = with_image->at("question").get<std::string>();
  const std::string placeholder = "<image>\n";
  if (question.rfind(placeholder, 0) == 0 && question.find("<image>", placeholder.size()) == std::string::npos)
    question = question.substr(placeholder.size());  // the tool puts it back
  const std::string dump = temp_path("image.safetensors");
  const std::string input = "/image " + temp_path("missing.jpg") + "\n/image " + image_file(*with_image) + "\n" +
                            repl_line(question);
  const ToolRun run = run_tool(base_args(dump), input);
  ASSERT_EQ(run.status, 0) << describe(run);
  EXPECT_TRUE(contains(run.err, "error:")) << describe(run);
  EXPECT_TRUE(contains(run.out, with_image->at("response").get<std::string>())) << describe(run);
  expect_dump_matches(dump, *with_image);
  ::unlink(dump.c_str());
}

// An undecodable image prints "error: ..." (at /image, see chat_repl_test) and the conversation
// goes on without it.
TEST_P(ChatTool, FailedTurnKeepsTheConversationGoing) {
  const json* text_only = find_conversation([](const json& c) { return !has_history(c) && !has_image(c); });
  if (text_only == nullptr) GTEST_SKIP() << fixture_ << " has no text-only conversation";
  const std::string bad = temp_path("bad.jpg");
  write_file(bad, "this is not an image");
  const std::string dump = temp_path("failed.safetensors");
  const std::string question = repl_line(text_only->at("question").get<std::string>());
  const ToolRun run = run_tool(base_args(dump), "/image " + bad + "\n" + question);
  ASSERT_EQ(run.status, 0) << describe(run);
  EXPECT_TRUE(contains(run.err, "error:")) << describe(run);
  EXPECT_TRUE(contains(run.out, text_only->at("response").get<std::string>())) << describe(run);
  expect_dump_matches(dump, *text_only);
  ::unlink(bad.c_str());
  ::unlink(dump.c_str());
}

TEST_P(ChatTool, EndOfInputExitsCleanly) {
  const ToolRun empty = run_tool({"--model", model_dir_}, std::string());
  EXPECT_EQ(empty.status, 0) << describe(empty);
  EXPECT_EQ(empty.out, "") << describe(empty);
  const ToolRun commands_only = run_tool({"--model", model_dir_}, "/reset\n\n   \n/help");  // no final newline
  EXPECT_EQ(commands_only.status, 0) << describe(commands_only);
  const ToolRun unknown = run_tool({"--model", model_dir_}, "/nonsense\n");
  EXPECT_EQ(unknown.status, 0) << describe(unknown);
  EXPECT_TRUE(contains(unknown.err, "error:")) << describe(unknown);
}

TEST_P(ChatTool, UnreadableImageFailsOneShot) {
  const ToolRun run = run_tool({"--model", model_dir_, "--image", temp_path("missing.jpg"), "--prompt", "hi"});
  EXPECT_EQ(run.status, 1) << describe(run);
  EXPECT_TRUE(contains(run.err, "error:")) << describe(run);
}

TEST_P(ChatTool, UnwritableDumpFails) {
  const ToolRun run = run_tool({"--model", model_dir_, "--max-new-tokens", "1", "--prompt", "hi", "--dump",
                            temp_path("no_such_dir") + "/out.safetensors"});
  EXPECT_EQ(run.status, 1) << describe(run);
  EXPECT_TRUE(contains(run.err, "error:")) << describe(run);
}

GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(ChatTool);
INSTANTIATE_TEST_SUITE_P(Fixtures, ChatTool,
                         ::testing::ValuesIn(internvl::testing::fixtures_with_architecture("InternVLChatModel")),
                         internvl::testing::FixtureName());

// ---- usage and errors -------------------------------------------------------------------------

class ChatToolCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!is_executable(tool_path())) GTEST_SKIP() << "internvl-chat not built (looked for " << tool_path() << ")";
  }
};

TEST_F(ChatToolCli, HelpExitsZero) {
  for (const char* flag : {"--help", "-h"}) {
    const ToolRun run = run_tool({flag});
    EXPECT_EQ(run.status, 0) << describe(run);
    EXPECT_TRUE(contains(run.out, "usage: internvl-chat")) << describe(run);
  }
}

TEST_F(ChatToolCli, VersionExitsZero) {
  const ToolRun run = run_tool({"--version"});
  EXPECT_EQ(run.status, 0) << describe(run);
  EXPECT_EQ(run.out, std::string("internvl-chat ") + INTERNVL_VERSION_STRING + "\n") << describe(run);
}

TEST_F(ChatToolCli, BadUsageExitsTwo) {
  const std::string model = internvl::testing::fixtures_dir();  // never loaded: usage is checked first
  const std::vector<std::vector<std::string>> cases = {
      {},
      {"--prompt", "hi"},
      {"--model", model, "--bogus"},
      {"--model", model, "stray"},
      {"--model", model, "--max-new-tokens"},
      {"--model", model, "--max-new-tokens", "abc"},
      {"--model", model, "--max-new-tokens", "0"},
      {"--model", model, "--max-new-tokens", "12x"},
      {"--model", model, "--max-tiles", "-1"},
      {"--model", model, "--temperature", "-0.5"},
      {"--model", model, "--device", "cuda:x"},
      {"--model", model, "--device", "cpu:1"},
      {"--model", model, "--stop", ""},
      {"--model", model, "--top-p", "1.5"},
      {"--model", model, "--top-k", "-2"},
      {"--model", model, "--repetition-penalty", "nan"},
      {"--model", model, "--seed", "-1"},
      {"--model", model, "--device", "tpu"},
      {"--model", model, "--dtype", "int8"},
      {"--model", model, "--greedy=yes"},
  };
  for (const auto& args : cases) {
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    const ToolRun run = run_tool(args);
    EXPECT_EQ(run.status, 2) << joined << "\n" << describe(run);
    EXPECT_FALSE(run.err.empty()) << joined;
  }
}

// A flag one or two typing mistakes from a real one is named in the error.
// --dump into a folder that does not exist fails before the model is even loaded.
TEST_F(ChatToolCli, DumpToAMissingFolderFailsFirst) {
  const ToolRun run = run_tool({"--model", "/nonexistent/model", "--prompt", "hi", "--dump", "/nonexistent/dir/out.safetensors"});
  EXPECT_EQ(run.status, 1) << describe(run);
  EXPECT_TRUE(contains(run.err, "the folder /nonexistent/dir does not exist")) << describe(run);
  EXPECT_FALSE(contains(run.err, "/nonexistent/model")) << "checked after loading\n" << describe(run);
}

TEST_F(ChatToolCli, BatchRefusesOneShotFlags) {
  const ToolRun both = run_tool({"--model", "m", "--batch", "in.jsonl", "--prompt", "hi"});
  EXPECT_EQ(both.status, 2) << describe(both);
  EXPECT_TRUE(contains(both.err, "--batch")) << describe(both);
  const ToolRun output_alone = run_tool({"--model", "m", "--output", "out.jsonl"});
  EXPECT_EQ(output_alone.status, 2) << describe(output_alone);
  const ToolRun missing = run_tool({"--model", "m", "--batch", "/nonexistent/in.jsonl"});
  EXPECT_EQ(missing.status, 1) << describe(missing);
  EXPECT_TRUE(contains(missing.err, "/nonexistent/in.jsonl")) << describe(missing);
}

TEST_F(ChatToolCli, UnknownFlagSuggestsTheNearestOne) {
  const std::string model = internvl::testing::fixtures_dir();
  for (const auto& [flag, suggestion] : std::vector<std::pair<std::string, std::string>>{
           {"--promt", "--prompt"}, {"--max-new-token", "--max-new-tokens"}, {"--devcie=cpu", "--device"}}) {
    const ToolRun run = run_tool({"--model", model, flag});
    EXPECT_EQ(run.status, 2) << describe(run);
    EXPECT_TRUE(contains(run.err, "did you mean " + suggestion + "?")) << describe(run);
  }
  const ToolRun far = run_tool({"--model", model, "--frobnicate"});
  EXPECT_EQ(far.status, 2) << describe(far);
  EXPECT_FALSE(contains(far.err, "did you mean")) << describe(far);
}

TEST_F(ChatToolCli, MissingModelExitsOne) {
  const ToolRun run = run_tool({"--model", temp_path("no_such_model"), "--prompt", "hi"});
  EXPECT_EQ(run.status, 1) << describe(run);
  EXPECT_TRUE(contains(run.err, "error:")) << describe(run);
  const ToolRun repl = run_tool({"--model", temp_path("no_such_model")}, "hello\n");
  EXPECT_EQ(repl.status, 1) << describe(repl);
  EXPECT_TRUE(contains(repl.err, "error:")) << describe(repl);
}

TEST_F(ChatToolCli, NonChatCheckpointExitsOne) {
  const auto fixtures = internvl::testing::fixtures_with_architecture("InternVLModel");
  if (fixtures.empty()) GTEST_SKIP() << "no InternVLModel fixture";
  const ToolRun run = run_tool({"--model", internvl::testing::fixture_path(fixtures.front()), "--prompt", "hi"});
  EXPECT_EQ(run.status, 1) << describe(run);
  EXPECT_TRUE(contains(run.err, "error:")) << describe(run);
}

}  // namespace
