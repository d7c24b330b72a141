// The internvl-chat REPL as a person meets it: through a pseudo-terminal (the libedit line
// editor: arrow-key edits, history, pastes longer than the kernel's 4095-byte canonical line,
// several pasted lines as one question) and through a pipe (/stop, /save, /load, the speed line).
// The tool itself is the oracle: the prompt ids of a REPL turn (--dump) must equal those of the
// same question asked one-shot or through a pipe, which chat_tool_test checks against the
// official chat().
#include <ATen/ATen.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "io/tensor_convert.h"
#include "support/fixtures.h"
#include "support/tool_runner.h"

extern char** environ;

namespace {

using internvl::testing::describe;
using internvl::testing::is_executable;
using internvl::testing::ToolRun;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr double kTurnSeconds = 120;  // bound on any one wait (model load, one answer)

std::string tool_path() { return internvl::testing::example_tool_path("INTERNVL_CHAT_TOOL", "examples/chat/internvl-chat"); }
std::string temp_path(const std::string& what) { return internvl::testing::unique_temp_path("chat_repl", what); }
bool contains(const std::string& haystack, const std::string& needle) { return haystack.find(needle) != std::string::npos; }

ToolRun run_tool(const std::vector<std::string>& args, const std::optional<std::string>& input = std::nullopt) {
  return internvl::testing::run_tool(tool_path(), args, input);
}

std::vector<int64_t> dump_ids(const std::string& path, const char* name) {
  internvl::io::SafetensorsFile file(path);
  const auto ids = internvl::io::to_tensor(file.tensor(name), at::kLong).contiguous();
  return std::vector<int64_t>(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + ids.numel());
}

bool printable_ascii(const std::string& text) {
  for (const unsigned char c : text)
    if (c < 0x20 || c > 0x7e) return false;
  return !text.empty();
}

// The tool on the slave side of a pseudo-terminal (stdin, stdout and stderr), as in a terminal
// window; the test types on the master side and reads what the terminal would show.
class PtySession {
 public:
  PtySession(const std::vector<std::string>& args, const std::string& home) {
    master_ = ::posix_openpt(O_RDWR | O_NOCTTY);
    if (master_ < 0 || ::grantpt(master_) != 0 || ::unlockpt(master_) != 0) return;
    const char* slave_name = ::ptsname(master_);
    if (slave_name == nullptr) return;
    const std::string slave(slave_name);
    slave_ = ::open(slave.c_str(), O_RDWR | O_NOCTTY);  // to watch the terminal's mode
    // Everything the child needs is built before fork (only async-signal-safe calls after it).
    const std::string tool = tool_path();
    std::vector<char*> argv{const_cast<char*>(tool.c_str())};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    std::vector<std::string> env_strings{"TERM=xterm", "HOME=" + home, "EDITRC=/dev/null"};
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string entry(*e);
      if (entry.rfind("TERM=", 0) != 0 && entry.rfind("HOME=", 0) != 0 && entry.rfind("EDITRC=", 0) != 0)
        env_strings.push_back(entry);
    }
    std::vector<char*> envp;
    for (auto& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);
    const winsize size{24, 80, 0, 0};
    pid_ = ::fork();
    if (pid_ == 0) {
      ::setsid();
      const int fd = ::open(slave.c_str(), O_RDWR);  // becomes the controlling terminal
      if (fd < 0) ::_exit(127);
      ::ioctl(fd, TIOCSCTTY, 0);
      ::ioctl(fd, TIOCSWINSZ, &size);
      ::dup2(fd, 0);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      if (fd > 2) ::close(fd);
      ::close(master_);
      ::close(slave_);
      ::execve(argv[0], argv.data(), envp.data());
      ::_exit(127);
    }
    ::fcntl(master_, F_SETFL, ::fcntl(master_, F_GETFL) | O_NONBLOCK);
  }
  ~PtySession() {
    if (pid_ > 0 && status_ < 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (master_ >= 0) ::close(master_);
    if (slave_ >= 0) ::close(slave_);
  }
  PtySession(const PtySession&) = delete;
  PtySession& operator=(const PtySession&) = delete;

  bool started() const { return master_ >= 0 && slave_ >= 0 && pid_ > 0; }

  // Waits until the line editor reads the terminal raw (it prints its prompt around the switch;
  // a person pasting is never that quick, a test is).
  bool wait_editing(double seconds = kTurnSeconds) {
    const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
    for (;;) {
      termios mode{};
      if (::tcgetattr(slave_, &mode) == 0 && (mode.c_lflag & ICANON) == 0) return true;
      if (Clock::now() > deadline) return false;
      drain();
      ::usleep(5000);
    }
  }

  // Types `bytes`, reading the echo meanwhile (a full output buffer would block the tool).
  bool type(const std::string& bytes, double seconds = kTurnSeconds) {
    const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
    std::size_t sent = 0;
    while (sent < bytes.size()) {
      if (Clock::now() > deadline) return false;
      pollfd fd{master_, POLLIN | POLLOUT, 0};
      if (::poll(&fd, 1, 100) < 0) return false;
      if (fd.revents & POLLIN) drain();
      if (fd.revents & POLLOUT) {
        const ssize_t n = ::write(master_, bytes.data() + sent, std::min<std::size_t>(bytes.size() - sent, 512));
        if (n > 0) sent += static_cast<std::size_t>(n);
        else if (n < 0 && errno != EAGAIN && errno != EINTR) return false;
      }
      if (fd.revents & (POLLHUP | POLLERR)) return false;
    }
    return true;
  }

  // Waits until `needle` shows after what earlier expects consumed; moves past it.
  bool expect(const std::string& needle, double seconds = kTurnSeconds) {
    const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
    for (;;) {
      const auto at = screen_.find(needle, cursor_);
      if (at != std::string::npos) {
        cursor_ = at + needle.size();
        return true;
      }
      if (Clock::now() > deadline) return false;
      pollfd fd{master_, POLLIN, 0};
      if (::poll(&fd, 1, 100) > 0) {
        if (!drain() && (fd.revents & POLLHUP)) return false;
      }
    }
  }

  // The exit status (128 + signal), or -1 when the tool did not end within `seconds`.
  int wait_exit(double seconds = kTurnSeconds) {
    const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
    while (Clock::now() < deadline) {
      drain();
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return status_;
      }
      ::usleep(20000);
    }
    return -1;
  }

  const std::string& screen() const { return screen_; }

 private:
  bool drain() {
    bool any = false;
    char buffer[65536];
    for (;;) {
      const ssize_t n = ::read(master_, buffer, sizeof(buffer));
      if (n <= 0) return any;
      screen_.append(buffer, static_cast<std::size_t>(n));
      any = true;
    }
  }

  int master_ = -1;
  int slave_ = -1;
  pid_t pid_ = -1;
  int status_ = -1;
  std::string screen_;
  std::size_t cursor_ = 0;
};

const char* const kLeft = "\x1b[D";
const char* const kUp = "\x1b[A";
const char* const kSpeedLine = "tokens/s";

class ChatRepl : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!is_executable(tool_path())) GTEST_SKIP() << "internvl-chat not built (looked for " << tool_path() << ")";
    fixture_ = GetParam();
    model_dir_ = internvl::testing::fixture_path(fixture_);
    const json reference = internvl::testing::fixture_reference(fixture_);
    max_new_tokens_ = std::to_string(reference.at("generation").at("max_new_tokens").get<int>());
    for (const auto& conv : reference.at("inputs").at("conversations")) {
      const bool plain = !(conv.contains("history_in") && !conv.at("history_in").empty()) &&
                         internvl::testing::conversation_images(conv).empty();
      if (plain) text_questions_.push_back(conv.at("question").get<std::string>());
    }
    home_ = temp_path("home");
    ::mkdir(home_.c_str(), 0700);
  }

  std::vector<std::string> args(const std::string& dump) const {
    std::vector<std::string> a = {"-m", model_dir_, "--greedy", "-n", max_new_tokens_};
    if (!dump.empty()) a.insert(a.end(), {"--dump", dump});
    return a;
  }

  // A typed question: a reference one when it is plain ASCII on one line (arrow keys move by
  // characters), else a fixed one.
  std::string ascii_question() const {
    for (const auto& q : text_questions_)
      if (printable_ascii(q) && q.size() >= 4) return q;
    return "Hello, who are you?";
  }

  // The prompt ids of `question` asked one-shot.
  std::vector<int64_t> one_shot_ids(const std::string& question) {
    const std::string dump = temp_path("oneshot.safetensors");
    const ToolRun run = run_tool({"-m", model_dir_, "--greedy", "-n", "1", "--dump", dump, "-p", question});
    EXPECT_EQ(run.status, 0) << describe(run);
    if (run.status != 0) return {};
    auto ids = dump_ids(dump, "input_ids");
    ::unlink(dump.c_str());
    return ids;
  }

  // Skips when the tool was built without libedit (there is no line editor to drive).
  bool has_line_editor() {
    const ToolRun help = run_tool({"--help"});
    return !contains(help.out, "without libedit");
  }

  std::string fixture_, model_dir_, max_new_tokens_, home_;
  std::vector<std::string> text_questions_;
};

// ---- through a pseudo-terminal ----------------------------------------------------------------

TEST_P(ChatRepl, LeftArrowEditIsTheQuestionAsked) {
  if (!has_line_editor()) GTEST_SKIP() << "internvl-chat built without libedit";
  const std::string question = ascii_question();
  const std::size_t k = question.size() / 2;  // type it without this character, then go back for it
  const std::string dump = temp_path("edit.safetensors");
  PtySession tty(args(dump), home_);
  ASSERT_TRUE(tty.started());
  ASSERT_TRUE(tty.expect("> ") && tty.wait_editing()) << tty.screen();
  std::string keys = question.substr(0, k) + question.substr(k + 1);
  for (std::size_t i = k + 1; i < question.size(); ++i) keys += kLeft;
  ASSERT_TRUE(tty.type(keys + question[k] + "\r"));
  ASSERT_TRUE(tty.expect(kSpeedLine)) << tty.screen();
  ASSERT_TRUE(tty.expect("> ") && tty.wait_editing()) << tty.screen();
  EXPECT_FALSE(contains(tty.screen(), "^[[D")) << tty.screen();
  ASSERT_TRUE(tty.type("\x04"));  // Ctrl-D at an empty prompt leaves
  EXPECT_EQ(tty.wait_exit(), 0) << tty.screen();
  EXPECT_EQ(dump_ids(dump, "input_ids"), one_shot_ids(question)) << "the model was asked something else";
  ::unlink(dump.c_str());
}

// A line longer than the 4095 bytes canonical mode keeps (and than the kernel's 4096-byte input
// buffer) arrives whole.
TEST_P(ChatRepl, LongPastedLineArrivesWhole) {
  if (!has_line_editor()) GTEST_SKIP() << "internvl-chat built without libedit";
  std::string line = ascii_question();
  while (line.size() <= 4096 + 512) line += " The quick brown fox jumps over the lazy dog.";
  const std::vector<int64_t> expected = one_shot_ids(line);
  ASSERT_FALSE(expected.empty());
  const std::string dump = temp_path("long.safetensors");
  PtySession tty(args(dump), home_);
  ASSERT_TRUE(tty.started());
  ASSERT_TRUE(tty.expect("> ") && tty.wait_editing()) << tty.screen();
  ASSERT_TRUE(tty.type(line + "\r"));
  ASSERT_TRUE(tty.expect(kSpeedLine)) << tty.screen();
  ASSERT_TRUE(tty.expect("> ") && tty.wait_editing()) << tty.screen();
  ASSERT_TRUE(tty.type("\x04"));
  EXPECT_EQ(tty.wait_exit(), 0) << tty.screen();
  EXPECT_EQ(dump_ids(dump, "input_ids"), expected) << "the pasted line was cut";
  ::unlink(dump.c_str());
}

// Up-arrow recalls the previous question: the same two turns as the question sent twice
// through a pipe.
TEST_P(ChatRepl, UpArrowRecallsThePreviousQuestion) {
  if (!has_line_editor()) GTEST_SKIP() << "internvl-chat built without libedit";
  const std::string question = ascii_question();
  const std::string dump = temp_path("up.safetensors"), piped = temp_path("up_piped.safetensors");
  PtySession tty(args(dump), home_);
  ASSERT_TRUE(tty.started());
  ASSERT_TRUE(tty.expect("> ") && tty.wait_editing()) << tty.screen();
  ASSERT_TRUE(tty.type(question + "\r"));
  ASSERT_TRUE(tty.expect(kSpeedLine)) << tty.screen();
  ASSERT_TRUE(tty.expect("> ") && tty.wait_editing()) << tty.screen();
  ASSERT_TRUE(tty.type(std::string(kUp) + "\r"));
  ASSERT_TRUE(tty.expect(kSpeedLine)) << tty.screen();
  ASSERT_TRUE(tty.expect("> ") && tty.wait_editing()) << tty.screen();
  ASSERT_TRUE(tty.type("/quit\r"));
  EXPECT_EQ(tty.wait_exit(), 0) << tty.screen();
  const ToolRun run = run_tool(args(piped), question + "\n" + question + "\n");
  ASSERT_EQ(run.status, 0) << describe(run);
  EXPECT_EQ(dump_ids(dump, "input_ids"), dump_ids(piped, "input_ids"));
  EXPECT_EQ(dump_ids(dump, "output_ids"), dump_ids(piped, "output_ids"));
  for (const auto& path : {dump, piped}) ::unlink(path.c_str());
}

// Lines pasted together are one question (with newlines), not one question each.
TEST_P(ChatRepl, PastedLinesAreOneQuestion) {
  if (!has_line_editor()) GTEST_SKIP() << "internvl-chat built without libedit";
  const std::string first = ascii_question(), second = "Answer briefly.";
  const std::string dump = temp_path("paste.safetensors");
  PtySession tty(args(dump), home_);
  ASSERT_TRUE(tty.started());
  ASSERT_TRUE(tty.expect("> ") && tty.wait_editing()) << tty.screen();
  ASSERT_TRUE(tty.type(first + "\r" + second + "\r"));
  ASSERT_TRUE(tty.expect(kSpeedLine)) << tty.screen();
  ASSERT_TRUE(tty.expect("> ") && tty.wait_editing()) << tty.screen();
  ASSERT_TRUE(tty.type("\x04"));
  EXPECT_EQ(tty.wait_exit(), 0) << tty.screen();
  EXPECT_EQ(tty.screen().find(kSpeedLine), tty.screen().rfind(kSpeedLine)) << "asked twice\n" << tty.screen();
  EXPECT_EQ(dump_ids(dump, "input_ids"), one_shot_ids(first + "\n" + second));
  ::unlink(dump.c_str());
}

// ---- commands, through a pipe -----------------------------------------------------------------

// After each answer stderr gets "N tokens in S s, R tokens/s; prompt P tokens)"; stdout holds
// only the answer.
TEST_P(ChatRepl, SpeedLineOnStderr) {
  const std::string question = ascii_question();
  const std::string dump = temp_path("speed.safetensors");
  const ToolRun run = run_tool(args(dump), question + "\n");
  ASSERT_EQ(run.status, 0) << describe(run);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(run.err, m, std::regex(R"(\((\d+) tokens in [0-9.]+ s, [0-9.]+ tokens/s; prompt (\d+) tokens\))")))
      << describe(run);
  EXPECT_EQ(std::stoul(m[1].str()), dump_ids(dump, "output_ids").size());
  EXPECT_EQ(std::stoul(m[2].str()), dump_ids(dump, "input_ids").size());
  EXPECT_FALSE(contains(run.out, kSpeedLine)) << describe(run);
  ::unlink(dump.c_str());
}

// /save writes the conversation; /load of it continues it exactly as if never interrupted, and
// saving again gives the same file.
TEST_P(ChatRepl, SaveLoadRoundTrip) {
  const std::string q1 = ascii_question(), q2 = "And then?";
  const std::string saved = temp_path("conv.json"), again = temp_path("conv2.json");
  const std::string image = internvl::testing::images_dir() + "/image1.jpg";
  const bool with_image = std::ifstream(image).good();
  auto base = [&](const std::string& dump) {
    auto a = args(dump);
    if (with_image) a.insert(a.end(), {"--image", image});
    return a;
  };
  const std::string d1 = temp_path("save1.safetensors");
  ToolRun run = run_tool(base(d1), q1 + "\n/save " + saved + "\n");
  ASSERT_EQ(run.status, 0) << describe(run);
  const json doc = internvl::testing::read_json(saved);
  ASSERT_EQ(doc.at("history").size(), 1u) << doc.dump();
  const std::string question = doc["history"][0].at("question"), answer = doc["history"][0].at("answer");
  EXPECT_EQ(question, with_image ? "<image>\n" + q1 : q1);
  EXPECT_TRUE(contains(run.out, answer)) << describe(run);
  EXPECT_EQ(doc.at("images"), with_image ? json::array({image}) : json::array());

  const std::string loaded = temp_path("loaded.safetensors"), straight = temp_path("straight.safetensors");
  run = run_tool(args(loaded), "/load " + saved + "\n" + q2 + "\n/save " + again + "\n");
  ASSERT_EQ(run.status, 0) << describe(run);
  EXPECT_FALSE(contains(run.err, "error:")) << describe(run);
  run = run_tool(base(straight), q1 + "\n" + q2 + "\n");
  ASSERT_EQ(run.status, 0) << describe(run);
  EXPECT_EQ(dump_ids(loaded, "input_ids"), dump_ids(straight, "input_ids"));
  EXPECT_EQ(dump_ids(loaded, "output_ids"), dump_ids(straight, "output_ids"));
  const json doc2 = internvl::testing::read_json(again);
  EXPECT_EQ(doc2.at("history").size(), 2u);
  EXPECT_EQ(doc2["history"][0], doc["history"][0]);
  EXPECT_EQ(doc2.at("images"), doc.at("images"));

  // /save replaced the file in one rename (no temporary left) and /load of a save is a no-op.
  run = run_tool(args(""), "/load " + again + "\n/save " + saved + "\n");
  ASSERT_EQ(run.status, 0) << describe(run);
  EXPECT_EQ(internvl::testing::read_file(saved), internvl::testing::read_file(again));
  for (const auto& path : {saved, again, d1, loaded, straight}) ::unlink(path.c_str());
}

// A /load that fails names the file and leaves the conversation as it was.
TEST_P(ChatRepl, BadLoadNamesTheFileAndTheConversationGoesOn) {
  const std::string q1 = ascii_question(), q2 = "And then?";
  const std::string garbage = temp_path("garbage.json"), foreign = temp_path("foreign.json"),
                    missing = temp_path("missing.json");
  ASSERT_TRUE(internvl::testing::write_file(garbage, "{not json"));
  ASSERT_TRUE(internvl::testing::write_file(foreign, R"({"format": "something else", "history": []})"));
  const std::string dump = temp_path("bad.safetensors"), straight = temp_path("bad_straight.safetensors");
  ToolRun run = run_tool(args(dump), q1 + "\n/load " + garbage + "\n/load " + foreign + "\n/load " + missing + "\n" +
                                         "/load\n" + q2 + "\n");
  ASSERT_EQ(run.status, 0) << describe(run);
  for (const auto& path : {garbage, foreign, missing})
    EXPECT_TRUE(contains(run.err, "error: cannot load conversation " + path + ": ")) << path << "\n" << describe(run);
  EXPECT_TRUE(contains(run.err, "error: /load needs a file name")) << describe(run);
  run = run_tool(args(straight), q1 + "\n" + q2 + "\n");
  ASSERT_EQ(run.status, 0) << describe(run);
  EXPECT_EQ(dump_ids(dump, "input_ids"), dump_ids(straight, "input_ids"));
  // /save into a missing folder is an error naming it, and the REPL goes on.
  const std::string nowhere = temp_path("no_such_dir") + "/c.json";
  run = run_tool(args(""), "/save " + nowhere + "\n" + q1 + "\n");
  ASSERT_EQ(run.status, 0) << describe(run);
  EXPECT_TRUE(contains(run.err, "error: cannot write conversation " + nowhere)) << describe(run);
  EXPECT_TRUE(contains(run.err, kSpeedLine)) << describe(run);
  for (const auto& path : {garbage, foreign, dump, straight}) ::unlink(path.c_str());
}

// /image of a file that is missing, a folder, empty or not an image is an error naming it when
// given; the image is not attached (the question's prompt is that of no image) and the REPL goes
// on. A good image is still accepted.
TEST_P(ChatRepl, BadImageIsRefusedWhenGiven) {
  const std::string question = ascii_question();
  const std::string missing = temp_path("missing.jpg"), empty = temp_path("empty.png"), text = temp_path("text.jpg");
  ASSERT_TRUE(internvl::testing::write_file(empty, ""));
  ASSERT_TRUE(internvl::testing::write_file(text, "this is not an image\n"));
  const std::string folder = home_;  // a folder, not an image file
  const std::string dump = temp_path("badimage.safetensors"), straight = temp_path("badimage_straight.safetensors");
  std::string input;
  for (const auto& path : {missing, folder, empty, text}) input += "/image " + path + "\n";
  ToolRun run = run_tool(args(dump), input + question + "\n");
  ASSERT_EQ(run.status, 0) << describe(run);
  for (const auto& path : {missing, folder, empty, text}) {
    EXPECT_TRUE(contains(run.err, "error: " + path)) << path << "\n" << describe(run);
  }
  EXPECT_FALSE(contains(run.err, "added:")) << describe(run);
  EXPECT_TRUE(contains(run.err, kSpeedLine)) << "the question after the bad images is answered\n" << describe(run);
  run = run_tool(args(straight), question + "\n");
  ASSERT_EQ(run.status, 0) << describe(run);
  EXPECT_EQ(dump_ids(dump, "input_ids"), dump_ids(straight, "input_ids"));

  // A good image: the first one the reference conversations use.
  std::string image;
  for (const auto& conv : internvl::testing::fixture_reference(fixture_).at("inputs").at("conversations")) {
    const auto files = internvl::testing::conversation_images(conv);
    if (image.empty() && !files.empty()) image = internvl::testing::images_dir() + "/" + files.front();
  }
  if (!image.empty()) {
    run = run_tool(args(""), "/image " + missing + "\n/image " + image + "\n");
    ASSERT_EQ(run.status, 0) << describe(run);
    EXPECT_TRUE(contains(run.err, "(image 1 added: " + image)) << describe(run);
  }
  // --image is checked the same way, before the model is loaded: status 1, the file named.
  run = run_tool({"-m", model_dir_, "--image", text, "-p", question});
  EXPECT_EQ(run.status, 1) << describe(run);
  EXPECT_TRUE(contains(run.err, "error: " + text)) << describe(run);
  for (const auto& path : {empty, text, dump, straight}) ::unlink(path.c_str());
}

// /stop TEXT ends later answers before TEXT, like --stop; /stop clear forgets the stop strings
// (/reset keeps them: they are settings, not conversation).
TEST_P(ChatRepl, StopCommand) {
  const std::string question = ascii_question();
  const std::string plain_dump = temp_path("plain.safetensors");
  ToolRun plain = run_tool(args(plain_dump), question + "\n");
  ASSERT_EQ(plain.status, 0) << describe(plain);
  std::string answer = plain.out;
  while (!answer.empty() && answer.back() == '\n') answer.pop_back();
  if (answer.size() < 8) GTEST_SKIP() << fixture_ << ": answer too short to cut";
  std::size_t at = answer.size() / 2;
  while (at < answer.size() && (static_cast<unsigned char>(answer[at]) & 0xC0) == 0x80) ++at;  // a whole character
  const std::string stop = answer.substr(at, 1);
  if (stop == " " || stop == "\\" || stop == "\"") GTEST_SKIP() << "awkward stop character";
  ToolRun run = run_tool(args(""), "/stop " + stop + "\n" + question + "\n/stop\n/stop clear\n/reset\n" + question + "\n");
  ASSERT_EQ(run.status, 0) << describe(run);
  EXPECT_FALSE(contains(run.err, "error:")) << describe(run);
  EXPECT_TRUE(contains(run.err, "(stop strings: \"" + stop + "\")")) << describe(run);
  const std::string cut = run.out.substr(0, run.out.find('\n'));
  EXPECT_FALSE(contains(cut, stop)) << describe(run);
  EXPECT_TRUE(contains(run.out.substr(cut.size()), answer)) << "after /stop clear the whole answer\n" << describe(run);
  ::unlink(plain_dump.c_str());
}

GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(ChatRepl);
INSTANTIATE_TEST_SUITE_P(Fixtures, ChatRepl,
                         ::testing::ValuesIn(internvl::testing::fixtures_with_architecture("InternVLChatModel")),
                         internvl::testing::FixtureName());

}  // namespace
