// internvl-chat: one streamed turn, the conversation state and the interactive loop.
#pragma once

#include <cstddef>
#include <istream>
#include <string>
#include <vector>

#include "cli.h"
#include "line_reader.h"
#include "internvl/internvl.h"

namespace chat_tool {

// Runs Model::chat, printing the text to stdout as it is generated (flushed piece by piece)
// and a final newline. Ctrl-C (SIGINT) while it runs stops the generation early and
// `*interrupted` is set; a second Ctrl-C ends the process. `*seconds` gets the wall time of the
// call. Throws what Model::chat throws, and internvl::Error when stdout cannot be written.
internvl::ChatResult run_turn(const internvl::Model& model, const internvl::ChatRequest& request,
                              bool* interrupted = nullptr, double* seconds = nullptr);

// A multi-turn conversation as the official chat() sees it: (question, answer) history and the
// images of the whole conversation. Images join the conversation with the next question: unless
// that question places them itself with "<image>" placeholders, one "<image>\n" per new image
// is prepended to it (what the official chat() does on a first turn), and the history keeps
// the question with its placeholders. Every later turn passes all the images again with the
// history, so they fill the placeholders of the whole prompt in order.
class Conversation {
 public:
  void add_image(const std::string& path);
  void reset();  // forgets the history and every image

  // The question as it will be sent (placeholders of the new images prepended when needed).
  std::string question_to_send(const std::string& question) const;
  // The request of the next turn (`question` as question_to_send makes it).
  internvl::ChatRequest request(const std::string& question) const;
  // Records a finished turn: `sent_question` as request() built it, and the answer.
  void commit(const std::string& sent_question, const std::string& answer);
  // Forgets the images that were added since the last turn.
  void drop_new_images();

  std::size_t images() const { return images_.size(); }
  std::size_t new_images() const { return images_.size() - introduced_; }
  std::size_t turns() const { return history_.size(); }

  // /save and /load: {"format": "internvl-chat-conversation", "version": 1, "images": [paths],
  // "images_placed": n, "history": [{"question": ..., "answer": ...}]}. from_json throws
  // std::runtime_error saying what is wrong.
  std::string to_json() const;
  static Conversation from_json(const std::string& text);

 private:
  std::vector<std::string> images_;
  std::size_t introduced_ = 0;  // images already placed by an earlier turn's question
  std::vector<internvl::ChatTurn> history_;
};

// The interactive loop: reads questions and commands from `in` until /quit or end of input,
// streaming answers to stdout and a speed line per answer to stderr. Returns the exit status
// (0, or 1 when stdout broke).
int run_repl(const internvl::Model& model, const Options& options, LineReader& in);

}  // namespace chat_tool
