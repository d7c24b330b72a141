// internvl-chat: streamed turns and the interactive conversation loop.
#include "repl.h"

#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>

#include "dump.h"

namespace chat_tool {

namespace {

volatile std::sig_atomic_t g_interrupted = 0;

extern "C" void on_sigint(int) {
  if (g_interrupted != 0) {  // the second Ctrl-C: leave now
    std::signal(SIGINT, SIG_DFL);
    std::raise(SIGINT);
    return;
  }
  g_interrupted = 1;
}

// Ctrl-C stops the generation while this lives (no SA_RESTART: nothing blocks on it here).
class SigintScope {
 public:
  SigintScope() {
    g_interrupted = 0;
    struct sigaction action {};
    action.sa_handler = on_sigint;
    sigemptyset(&action.sa_mask);
    installed_ = ::sigaction(SIGINT, &action, &previous_) == 0;
  }
  ~SigintScope() {
    if (installed_) ::sigaction(SIGINT, &previous_, nullptr);
  }
  SigintScope(const SigintScope&) = delete;
  SigintScope& operator=(const SigintScope&) = delete;

 private:
  struct sigaction previous_ {};
  bool installed_ = false;
};

const char* const kWhitespace = " \t\r\n\f\v";

std::string trim(const std::string& text) {
  const auto first = text.find_first_not_of(kWhitespace);
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(kWhitespace) - first + 1);
}

bool write_out(const std::string& text) {
  if (!text.empty() && std::fwrite(text.data(), 1, text.size(), stdout) != text.size()) return false;
  return std::fflush(stdout) == 0;
}

// One logical line: physical lines ending in '\' continue on the next (the '\' becomes '\n').
bool read_input(std::istream& in, bool show_prompt, std::string& out) {
  out.clear();
  std::string line;
  if (!std::getline(in, line)) return false;
  for (;;) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line.back() != '\\') break;
    line.pop_back();
    out += line + "\n";
    if (show_prompt) write_out("... ");
    if (!std::getline(in, line)) return true;
  }
  out += line;
  return true;
}

std::string expand_home(const std::string& path) {
  if (path.rfind("~/", 0) == 0) {
    if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') return home + path.substr(1);
  }
  return path;
}

std::string unquote(const std::string& text) {
  if (text.size() >= 2 && (text.front() == '"' || text.front() == '\'') && text.back() == text.front())
    return text.substr(1, text.size() - 2);
  return text;
}

void note(const std::string& text) { std::fprintf(stderr, "%s\n", text.c_str()); }
void error(const std::string& text) { std::fprintf(stderr, "error: %s\n", text.c_str()); }

void print_commands() {
  note("Type a question and press Enter; end a line with '\\' to continue on the next line.\n"
       "  /image PATH  add an image; it goes with your next question (earlier images stay)\n"
       "  /reset       start over: forget the history and all images\n"
       "  /help        this list\n"
       "  /quit        leave (also Ctrl-D)\n"
       "Ctrl-C stops an answer being generated. A question starting with '/' is written '//...'.");
}

}  // namespace

internvl::ChatResult run_turn(const internvl::Model& model, const internvl::ChatRequest& request, bool* interrupted) {
  bool broken = false;
  bool open_line = false;  // text printed since the last newline
  auto on_text = [&](const std::string& text) {
    if (g_interrupted != 0) return false;
    if (!write_out(text)) {
      broken = true;
      return false;
    }
    open_line = true;
    return g_interrupted == 0;
  };
  internvl::ChatResult result;
  {
    SigintScope sigint;
    try {
      result = model.chat(request, on_text);
    } catch (...) {
      if (open_line) write_out("\n");
      throw;
    }
    if (interrupted != nullptr) *interrupted = g_interrupted != 0;
  }
  if (broken || !write_out("\n")) throw internvl::Error("cannot write the answer to stdout");
  return result;
}

void Conversation::add_image(const std::string& path) { images_.push_back(path); }

void Conversation::reset() {
  images_.clear();
  introduced_ = 0;
  history_.clear();
}

std::string Conversation::question_to_send(const std::string& question) const {
  if (new_images() == 0 || question.find("<image>") != std::string::npos) return question;
  // One image: chat()'s "<image>\n"; several: the official README's "Image-k: <image>\n", numbered
  // across the conversation.
  std::string placed;
  for (std::size_t i = 0; i < new_images(); ++i) {
    placed += images_.size() > 1 ? "Image-" + std::to_string(introduced_ + i + 1) + ": <image>\n" : "<image>\n";
  }
  return placed + question;
}

internvl::ChatRequest Conversation::request(const std::string& question) const {
  internvl::ChatRequest request;
  request.question = question_to_send(question);
  for (const auto& path : images_) request.images.push_back(internvl::Image::from_file(path));
  request.history = history_;
  return request;
}

void Conversation::commit(const std::string& sent_question, const std::string& answer) {
  history_.push_back({sent_question, answer});
  introduced_ = images_.size();
}

void Conversation::drop_new_images() { images_.resize(introduced_); }

int run_repl(const internvl::Model& model, const Options& options, std::istream& in, bool show_prompt) {
  Conversation conversation;
  for (const auto& path : options.images) conversation.add_image(path);

  // One question: returns false when stdout is gone.
  auto ask = [&](const std::string& question) {
    auto request = conversation.request(question);
    request.max_tiles = options.max_tiles;
    request.system_message = options.system_message;
    request.generation = options.generation;
    try {
      bool interrupted = false;
      const auto result = run_turn(model, request, &interrupted);
      if (interrupted) note("(stopped)");
      conversation.commit(request.question, result.response);
      if (!options.dump_path.empty()) write_dump(options.dump_path, result);
    } catch (const internvl::ImageError& e) {
      error(e.what());
      if (conversation.new_images() > 0) {
        note("(the image(s) added for this question were dropped; add them again with /image)");
        conversation.drop_new_images();
      }
    } catch (const std::exception& e) {  // internvl::Error and anything unexpected: the loop goes on
      if (std::ferror(stdout)) return false;
      error(e.what());
    }
    return true;
  };

  if (options.prompt && !ask(*options.prompt)) return 1;
  std::string input;
  for (;;) {
    if (show_prompt && !write_out("> ")) return 1;
    if (!read_input(in, show_prompt, input)) {
      if (show_prompt) write_out("\n");
      return 0;
    }
    const std::string line = trim(input);
    if (line.empty()) continue;
    if (line[0] == '/' && line.rfind("//", 0) != 0) {
      const auto space = line.find_first_of(kWhitespace);
      const std::string command = line.substr(0, space);
      const std::string argument = space == std::string::npos ? "" : trim(line.substr(space));
      if (command == "/quit" || command == "/exit" || command == "/q") return 0;
      if (command == "/help" || command == "/?") {
        print_commands();
      } else if (command == "/reset") {
        conversation.reset();
        note("(conversation cleared: no history, no images)");
      } else if (command == "/image") {
        const std::string path = expand_home(unquote(argument));
        if (path.empty()) {
          error("/image needs a path");
        } else if (!std::ifstream(path, std::ios::binary).good()) {
          error("cannot read image " + path);
        } else {
          conversation.add_image(path);
          note("(image " + std::to_string(conversation.images()) + " added: " + path +
               "; it goes with your next question)");
        }
      } else {
        error("unknown command " + command + " (/help lists the commands)");
      }
      continue;
    }
    if (!ask(line[0] == '/' ? input.substr(input.find('/') + 1) : input)) return 1;
  }
}

}  // namespace chat_tool
