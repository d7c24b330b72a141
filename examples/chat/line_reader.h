// internvl-chat: where the REPL's lines come from: a plain stream (pipes, files) or, when stdin
// is a terminal and the tool was built with libedit, a line editor with history.
#pragma once

#include <istream>
#include <memory>
#include <string>

namespace chat_tool {

class LineReader {
 public:
  virtual ~LineReader() = default;
  // One logical line without its newline: physical lines ending in '\' continue on the next
  // (the '\' becomes '\n'). Returns false at end of input.
  virtual bool read(std::string& out) = 0;
};

// Reads `in` with std::getline; prints "> " (and "... " for continued lines) to stdout when
// `show_prompt`.
std::unique_ptr<LineReader> make_stream_reader(std::istream& in, bool show_prompt);

// The line editor on stdin/stdout (editing, in-memory history, lines pasted together joined into
// one question), or nullptr when the tool was built without libedit.
std::unique_ptr<LineReader> make_line_editor();

}  // namespace chat_tool
