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
#include "io/tensor_convert.h"
#include "support/fixtures.h"

extern char** environ;

using internvl::testing::AllCloseToReference;
using internvl::testing::reference_tensor;
using internvl::testing::TensorsEqual;
using nlohmann::json;

namespace {

std::string directory_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

// The tool is built next to the tests: <build>/tests/<this test> and
// <build>/examples/chat/internvl-chat. $INTERNVL_CHAT_TOOL overrides.
std::string tool_path() {
  if (const char* env = std::getenv("INTERNVL_CHAT_TOOL"); env != nullptr && *env != '\0') return env;
  char self[4096];
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return "";
  self[n] = '\0';
  return directory_of(directory_of(self)) + "/examples/chat/internvl-chat";
}

bool is_executable(const std::string& path) { return !path.empty() && ::access(path.c_str(), X_OK) == 0; }

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
  ASSERT_TRUE(out.good()) << path;
}

std::string temp_path(const std::string& what) {
  static std::atomic<int> counter{0};
  return ::testing::TempDir() + "/chat_tool_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + "_" +
         what;
}

struct ToolRun {
  int status = -1;  // exit status, or 128 + signal
  std::string out;
  std::string err;
};

std::string describe(const ToolRun& run) {
  return "exit " + std::to_string(run.status) + "\nstdout:\n" + run.out + "\nstderr:\n" + run.err;
}

// Runs the tool with `args` (no shell). With `input`, stdin is a pipe the text is written into
// and then closed (end of input); without, stdin is /dev/null.
ToolRun run_tool(const std::vector<std::string>& args, const std::optional<std::string>& input = std::nullopt) {
  const std::string stem = temp_path("run");
  const std::string out_path = stem + ".out", err_path = stem + ".err";
  const std::string tool = tool_path();
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(tool.c_str()));
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);

  ToolRun run;
  int pipe_fds[2] = {-1, -1};
  if (input && ::pipe(pipe_fds) != 0) {
    run.err = std::string("pipe failed: ") + std::strerror(errno);
    return run;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (input) {
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[0], STDIN_FILENO);
    posix_spawn_file_actions_addclose(&actions, pipe_fds[0]);
    posix_spawn_file_actions_addclose(&actions, pipe_fds[1]);
  } else {
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  }
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, tool.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (input) ::close(pipe_fds[0]);
  if (rc != 0) {
    if (input) ::close(pipe_fds[1]);
    run.err = "posix_spawn failed: " + std::string(std::strerror(rc));
    return run;
  }
  if (input) {
    // The tool may quit (and close its stdin) before reading everything: no SIGPIPE here.
    struct sigaction ignore {}, previous {};
    ignore.sa_handler = SIG_IGN;
    ::sigaction(SIGPIPE, &ignore, &previous);
    std::size_t written = 0;
    while (written < input->size()) {
      const ssize_t n = ::write(pipe_fds[1], input->data() + written, input->size() - written);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      written += static_cast<std::size_t>(n);
    }
    ::close(pipe_fds[1]);
    ::sigaction(SIGPIPE, &previous, nullptr);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  run.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  run.out = read_file(out_path);
  run.err = read_file(err_path);
  ::unlink(out_path.c_str());
  ::unlink(err_path.c_str());
  return run;
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

std::string image_file(const json& conv) {
  return internvl::testing::images_dir() + "/" + conv.at("image").get<std::string>();
}

bool has_image(const json& conv) { return conv.contains("image") && conv.at("image").is_string(); }
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
    if (has_image(conv)) args.insert(args.end(), {"--image", image_file(conv)});
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

// ---- conversations through a pipe -------------------------------------------------------------

TEST_P(ChatTool, MultiTurnConversationMatchesOfficialChat) {
  int checked = 0;
  for (const auto& conv : conversations_) {
    if (!has_history(conv)) continue;
    SCOPED_TRACE(conv.at("key").get<std::string>());
    const std::string dump = temp_path("multiturn.safetensors");
    auto args = base_args(dump);
    if (has_image(conv)) args.insert(args.end(), {"--image", image_file(conv)});
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
  const json* with_image = find_conversation([](const json& c) { return !has_history(c) && has_image(c); });
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
  const json* with_image = find_conversation([](const json& c) { return !has_history(c) && has_image(c); });
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

// A turn that fails (an undecodable image) prints "error: ..." and the conversation goes on
// without that image.
TEST_P(ChatTool, FailedTurnKeepsTheConversationGoing) {
  const json* text_only = find_conversation([](const json& c) { return !has_history(c) && !has_image(c); });
  if (text_only == nullptr) GTEST_SKIP() << fixture_ << " has no text-only conversation";
  const std::string bad = temp_path("bad.jpg");
  write_file(bad, "this is not an image");
  const std::string dump = temp_path("failed.safetensors");
  const std::string question = repl_line(text_only->at("question").get<std::string>());
  const ToolRun run = run_tool(base_args(dump), "/image " + bad + "\n" + question + question);
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
      {"--model", model, "--temperature", "0"},
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
