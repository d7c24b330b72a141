// internvl-chat: ask an InternVL-Chat checkpoint about images, once (--prompt) or in a
// multi-turn conversation on stdin. Uses only the public API (internvl/internvl.h).
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <string>

#include "../common/user_terms.h"
#include "batch.h"
#include "cli.h"
#include "dump.h"
#include "internvl/internvl.h"
#include "repl.h"

namespace {

std::string read_all(std::istream& in) {
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

int run(int argc, char** argv) {
  chat_tool::Options options;
  try {
    options = chat_tool::parse_command_line(argc, argv);
  } catch (const chat_tool::UsageError& e) {
    std::fprintf(stderr, "internvl-chat: %s\n(internvl-chat --help shows the options)\n", e.what());
    return 2;
  }
  if (options.help) {
    chat_tool::print_usage(stdout);
    return 0;
  }
  if (options.version) {
    std::printf("internvl-chat %s\n", INTERNVL_VERSION_STRING);
    return 0;
  }
  const bool one_shot = options.prompt.has_value() && !options.interactive;
  if (options.prompt && *options.prompt == "-") {
    if (options.interactive) {
      std::fprintf(stderr, "internvl-chat: --prompt - reads stdin, which --interactive needs for the conversation\n");
      return 2;
    }
    options.prompt = read_all(std::cin);
  }
  if (!options.batch_input.empty() && !std::ifstream(options.batch_input, std::ios::binary).good()) {
    std::fprintf(stderr, "internvl-chat: cannot read the batch file %s\n", options.batch_input.c_str());
    return 1;
  }
  // A dump that cannot be written fails now, not after the answer has been generated.
  if (!options.dump_path.empty()) {
    const auto folder = std::filesystem::path(options.dump_path).parent_path();
    if (!folder.empty() && !std::filesystem::is_directory(folder)) {
      std::fprintf(stderr, "error: cannot write the dump %s: the folder %s does not exist\n", options.dump_path.c_str(),
                   folder.string().c_str());
      return 1;
    }
  }
  // A bad --image fails before the model loads, as the REPL's /image does when given.
  for (const auto& image : options.images) {
    const auto checked = internvl::inspect_image(internvl::Image::from_file(image), options.load.max_image_pixels);
    if (!checked.ok()) throw internvl::ImageError(checked.problem);
  }

  const bool tty_in = ::isatty(STDIN_FILENO) == 1;
  if (::isatty(STDERR_FILENO) == 1) std::fprintf(stderr, "loading %s ...\n", options.model_dir.c_str());
  auto load = options.load;
  // A one-shot question without images never needs the vision tower.
  if (one_shot && options.images.empty() && options.batch_input.empty()) load.parts = internvl::ModelParts::kLanguageModel;
  const auto model = internvl::Model::load(options.model_dir, load);
  std::string template_name;
  try {
    template_name = model.chat_template();
  } catch (const internvl::UnsupportedError&) {  // its message names the API call, not the flag
    throw internvl::UnsupportedError("--model " + options.model_dir + " is an " + model.info().architecture +
                                     " checkpoint (retrieval); internvl-chat needs an InternVL-Chat one");
  }
  if (!options.batch_input.empty()) return chat_tool::run_batch(model, options);

  if (one_shot) {
    internvl::ChatRequest request;
    request.question = *options.prompt;
    for (const auto& path : options.images) request.images.push_back(internvl::Image::from_file(path));
    request.max_tiles = options.max_tiles;
    request.system_message = options.system_message;
    request.generation = options.generation;
    const auto result = chat_tool::run_turn(model, request);
    if (!options.dump_path.empty()) chat_tool::write_dump(options.dump_path, result);
    return 0;
  }
  if (tty_in) {
    std::fprintf(stderr,
                 "internvl-chat %s: %s (%s template), %zu image(s).\n"
                 "Type a question; /help lists the commands; /quit or Ctrl-D leaves.\n",
                 INTERNVL_VERSION_STRING, options.model_dir.c_str(), template_name.c_str(), options.images.size());
  }
  // The line editor needs a terminal on both sides (it draws on stdout); otherwise plain lines.
  std::unique_ptr<chat_tool::LineReader> reader;
  if (tty_in && ::isatty(STDOUT_FILENO) == 1) reader = chat_tool::make_line_editor();
  if (!reader) reader = chat_tool::make_stream_reader(std::cin, tty_in);
  return chat_tool::run_repl(model, options, *reader);
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);  // a closed stdout shows up as a write error instead
  try {
    return run(argc, argv);
  } catch (const internvl::Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "error: %s\n", tool_common::in_user_terms(e.what()).c_str());
    return 1;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (...) {
    std::fprintf(stderr, "error: unknown failure\n");
    return 1;
  }
}
