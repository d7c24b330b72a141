// internvl-chat: command-line options.
#pragma once

#include <cstdio>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "internvl/internvl.h"

namespace chat_tool {

// Bad usage: the tool prints the message and exits with status 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Options {
  std::string model_dir;                // -m / --model (a folder or a cached Hugging Face id)
  std::vector<std::string> images;      // --image (repeatable), in order
  std::optional<std::string> prompt;    // --prompt ("-": read the question from stdin)
  bool interactive = false;             // --interactive (also implied by no --prompt)
  internvl::LoadOptions load;           // --device, --dtype, --threads
  internvl::GenerationOptions generation;  // --max-new-tokens and the sampling flags
  bool seed_given = false;              // --seed given (else sampling draws a random seed)
  int max_tiles = 0;                    // --max-tiles (0: the config's max_dynamic_patch)
  std::string system_message;           // --system (empty: the template's default)
  std::string dump_path;                // --dump
  std::string batch_input;              // --batch IN.jsonl
  std::string batch_output;             // --output OUT.jsonl (empty: stdout)
  bool help = false;                    // -h / --help
  bool version = false;                 // --version
};

// Parses argv (argv[0] is skipped). Throws UsageError on unknown options, missing or malformed
// values and values out of range.
Options parse_command_line(int argc, const char* const* argv);

// The --help text.
void print_usage(std::FILE* out);

}  // namespace chat_tool
