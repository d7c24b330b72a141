// internvl-chat: the plain stream reader and the libedit line editor.
#include "line_reader.h"

#include <poll.h>
#include <termios.h>
#include <unistd.h>

#include <clocale>
#include <cstdio>
#include <cstdlib>
#include <string>

#ifdef INTERNVL_CHAT_HAVE_LIBEDIT
#include <editline/readline.h>
#endif

namespace chat_tool {

namespace {

bool write_out(const char* text) {
  std::fputs(text, stdout);
  return std::fflush(stdout) == 0;
}

class StreamReader : public LineReader {
 public:
  StreamReader(std::istream& in, bool show_prompt) : in_(in), show_prompt_(show_prompt) {}

  bool read(std::string& out) override {
    out.clear();
    if (show_prompt_) write_out("> ");
    std::string line;
    if (!std::getline(in_, line)) {
      if (show_prompt_) write_out("\n");
      return false;
    }
    for (;;) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty() || line.back() != '\\') break;
      line.pop_back();
      out += line + "\n";
      if (show_prompt_) write_out("... ");
      if (!std::getline(in_, line)) return true;
    }
    out += line;
    return true;
  }

 private:
  std::istream& in_;
  bool show_prompt_;
};

#ifdef INTERNVL_CHAT_HAVE_LIBEDIT

// More input already waiting on stdin within `ms`: the rest of a paste (a person cannot type
// the next line that fast). The terminal is non-canonical meanwhile: bytes the kernel takes in
// canonical mode are cut at 4095 per line, and a paste can be longer than its 4096-byte buffer.
// poll() then also sees a last pasted line without its newline, which the editor shows.
bool input_pending(int ms) {
  termios cooked{};
  const bool have_tty = ::tcgetattr(STDIN_FILENO, &cooked) == 0;
  if (have_tty) {
    termios raw = cooked;
    raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);  // ISIG stays: Ctrl-C still works
    raw.c_cc[VMIN] = 1;
    raw.c_cc[VTIME] = 0;
    ::tcsetattr(STDIN_FILENO, TCSANOW, &raw);
  }
  pollfd fd{STDIN_FILENO, POLLIN, 0};
  const bool pending = ::poll(&fd, 1, ms) == 1 && (fd.revents & POLLIN) != 0;
  if (have_tty) ::tcsetattr(STDIN_FILENO, TCSANOW, &cooked);
  return pending;
}

// libedit's readline(): it reads the terminal in raw mode, so a line is not limited to the 4095
// bytes of the kernel's canonical mode, and it grows its buffer as needed.
class Editor : public LineReader {
 public:
  Editor() {
    std::setlocale(LC_CTYPE, "");  // libedit decodes multibyte (UTF-8) input by the locale
    rl_readline_name = "internvl-chat";  // for ~/.editrc conditionals
    using_history();
  }

  bool read(std::string& out) override {
    out.clear();
    const char* prompt = "> ";
    bool first = true;
    for (;;) {
      char* raw = readline(prompt);
      if (raw == nullptr) {  // Ctrl-D (or end of input)
        if (!first) break;
        write_out("\n");
        return false;
      }
      std::string line(raw);
      std::free(raw);
      if (!first) out += "\n";
      first = false;
      prompt = "... ";
      if (!line.empty() && line.back() == '\\') {
        line.pop_back();
        out += line;
        continue;
      }
      out += line;
      if (!input_pending(30)) break;
    }
    if (out.find_first_not_of(" \t\n") != std::string::npos && out != last_) {
      add_history(out.c_str());
      last_ = out;
    }
    return true;
  }

 private:
  std::string last_;  // the newest history entry (repeats are not added again)
};

#endif

}  // namespace

std::unique_ptr<LineReader> make_stream_reader(std::istream& in, bool show_prompt) {
  return std::make_unique<StreamReader>(in, show_prompt);
}

std::unique_ptr<LineReader> make_line_editor() {
#ifdef INTERNVL_CHAT_HAVE_LIBEDIT
  return std::make_unique<Editor>();
#else
  return nullptr;
#endif
}

}  // namespace chat_tool
