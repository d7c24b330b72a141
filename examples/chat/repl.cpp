// internvl-chat: streamed turns and the interactive conversation loop.
#include "repl.h"

#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "atomic_file.h"
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
       "  /stop TEXT   end later answers before TEXT (\\n, \\t, \\\\ escapes; \"quotes\" keep spaces);\n"
       "               /stop alone lists the stop strings, /stop clear forgets them\n"
       "  /save FILE   write the conversation (history and images) as JSON\n"
       "  /load FILE   replace the conversation with one written by /save\n"
       "  /help        this list\n"
       "  /quit        leave (also Ctrl-D)\n"
       "Ctrl-C stops an answer being generated. A question starting with '/' is written '//...'.");
}

// The /stop argument: \\n, \\t and \\\\ stand for newline, tab and backslash (a stop string is
// often a newline, which a line cannot hold).
std::string unescape(const std::string& text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\\' || i + 1 == text.size()) {
      out += text[i];
      continue;
    }
    const char next = text[++i];
    if (next == 'n') out += '\n';
    else if (next == 't') out += '\t';
    else if (next == '\\') out += '\\';
    else out += std::string("\\") + next;
  }
  return out;
}

// A stop string as the user can read it back.
std::string shown(const std::string& text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c == '\\') out += "\\\\";
    else out += c;
  }
  return out + "\"";
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot be read");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw std::runtime_error("cannot be read");
  return text;
}

// "N tokens in S s, R tokens/s (prompt P tokens)", dimmed on a terminal so the answer stands out.
void print_speed(const internvl::ChatResult& result, double seconds) {
  char line[160];
  const std::size_t tokens = result.output_ids.size();
  std::snprintf(line, sizeof(line), "(%zu tokens in %.2f s, %.1f tokens/s; prompt %zu tokens)", tokens, seconds,
                seconds > 0 ? static_cast<double>(tokens) / seconds : 0.0, result.input_ids.size());
  const bool dim = ::isatty(STDERR_FILENO) == 1;
  std::fprintf(stderr, dim ? "\033[2m%s\033[0m\n" : "%s\n", line);
}

}  // namespace

internvl::ChatResult run_turn(const internvl::Model& model, const internvl::ChatRequest& request, bool* interrupted,
                              double* seconds) {
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
    const auto start = std::chrono::steady_clock::now();
    try {
      result = model.chat(request, on_text);
      if (seconds != nullptr)
        *seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
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

namespace {
const char* const kConversationFormat = "internvl-chat-conversation";
}

std::string Conversation::to_json() const {
  nlohmann::json history = nlohmann::json::array();
  for (const auto& turn : history_) history.push_back({{"question", turn.question}, {"answer", turn.answer}});
  const nlohmann::json doc = {{"format", kConversationFormat}, {"version", 1},         {"images", images_},
                              {"images_placed", introduced_},  {"history", history}};
  // Invalid UTF-8 (a cut multibyte answer) is replaced, not an error: the file stays writable.
  return doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

Conversation Conversation::from_json(const std::string& text) {
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(std::string("not JSON (") + e.what() + ")");
  }
  auto fail = [](const std::string& what) { throw std::runtime_error(what); };
  if (!doc.is_object() || doc.value("format", nlohmann::json()) != kConversationFormat)
    fail(std::string("not a conversation written by /save (no \"format\": \"") + kConversationFormat + "\")");
  if (doc.value("version", nlohmann::json()) != 1) fail("unsupported version (this tool reads version 1)");
  Conversation conversation;
  const auto images = doc.value("images", nlohmann::json::array());
  if (!images.is_array()) fail("\"images\" is not a list");
  for (const auto& image : images) {
    if (!image.is_string()) fail("\"images\" holds a value that is not a path");
    conversation.images_.push_back(image.get<std::string>());
  }
  const auto placed = doc.value("images_placed", nlohmann::json(0));
  if (!placed.is_number_unsigned() || placed.get<std::size_t>() > conversation.images_.size())
    fail("\"images_placed\" is not a count between 0 and the number of images");
  conversation.introduced_ = placed.get<std::size_t>();
  const auto history = doc.value("history", nlohmann::json::array());
  if (!history.is_array()) fail("\"history\" is not a list");
  for (const auto& turn : history) {
    if (!turn.is_object() || !turn.contains("question") || !turn.contains("answer") || !turn["question"].is_string() ||
        !turn["answer"].is_string())
      fail("a \"history\" entry is not {\"question\": text, \"answer\": text}");
    conversation.history_.push_back({turn["question"].get<std::string>(), turn["answer"].get<std::string>()});
  }
  return conversation;
}

int run_repl(const internvl::Model& model, const Options& options, LineReader& in) {
  Conversation conversation;
  internvl::GenerationOptions generation = options.generation;  // /stop changes its stop strings
  for (const auto& path : options.images) conversation.add_image(path);

  // One question: returns false when stdout is gone.
  auto ask = [&](const std::string& question) {
    auto request = conversation.request(question);
    request.max_tiles = options.max_tiles;
    request.system_message = options.system_message;
    request.generation = generation;
    try {
      bool interrupted = false;
      double seconds = 0;
      const auto result = run_turn(model, request, &interrupted, &seconds);
      if (interrupted) note("(stopped)");
      print_speed(result, seconds);
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
    if (!in.read(input)) return 0;
    if (std::ferror(stdout)) return 1;
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
        } else if (const auto checked = internvl::inspect_image(internvl::Image::from_file(path),
                                                                  model.options().max_image_pixels);
                   !checked.ok()) {
          // Decoded now, so a bad file is reported here rather than at the next question.
          error(checked.problem + " (image not added)");  // the library's message starts with the path
        } else {
          conversation.add_image(path);
          note("(image " + std::to_string(conversation.images()) + " added: " + path +
               "; it goes with your next question)");
        }
      } else if (command == "/stop") {
        auto& stops = generation.stop_strings;
        if (argument.empty()) {
          std::string list;
          for (const auto& stop : stops) list += " " + shown(stop);
          note(stops.empty() ? "(no stop strings)" : "(stop strings:" + list + ")");
        } else if (argument == "clear") {
          stops.clear();
          note("(stop strings cleared)");
        } else {
          const std::string stop = unescape(unquote(argument));
          if (stop.empty()) {
            error("/stop needs a non-empty string");
          } else {
            stops.push_back(stop);
            note("(later answers end before " + shown(stop) + ")");
          }
        }
      } else if (command == "/save" || command == "/load") {
        const std::string path = expand_home(unquote(argument));
        if (path.empty()) {
          error(command + " needs a file name");
        } else if (command == "/save") {
          try {
            write_file_atomically(path, conversation.to_json(), "conversation");
            note("(conversation saved to " + path + ": " + std::to_string(conversation.turns()) + " turn(s), " +
                 std::to_string(conversation.images()) + " image(s))");
          } catch (const std::exception& e) {
            error(e.what());
          }
        } else {
          try {
            conversation = Conversation::from_json(read_text_file(path));
            note("(conversation loaded from " + path + ": " + std::to_string(conversation.turns()) + " turn(s), " +
                 std::to_string(conversation.images()) + " image(s))");
          } catch (const std::exception& e) {  // the conversation stays as it was
            error("cannot load conversation " + path + ": " + e.what());
          }
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
