// internvl-retrieve: command-line parsing and usage text.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "internvl/internvl.h"

namespace retrieve {

// Bad command line: the message is printed with a usage hint and the tool exits with status 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A problem the tool itself detects at run time (missing input file, index of another model):
// printed as "error: ..." with exit status 1, like internvl::Error.
class ToolError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class Command { kNone, kIndex, kSearch, kClassify, kEmbed };
const char* command_name(Command command);

// One --query / --query-image, in command-line order.
struct Query {
  bool is_image = false;
  std::string value;  // the text, or the image path
};

struct Args {
  Command command = Command::kNone;
  bool help = false;
  bool version = false;  // --version

  // Model.
  std::string model_dir;
  std::optional<internvl::EmbedMode> mode;  // unset: "c", or the index's mode
  internvl::LoadOptions load;
  int batch_size = 8;
  int top_k = 5;
  bool top_k_given = false;

  // Inputs.
  std::string index_path;
  std::vector<Query> queries;
  std::vector<std::string> images;  // --images values and positional arguments, in order
  std::vector<std::string> texts;
  std::string labels_path;
  std::string templates_path;

  // Outputs.
  std::string save_embeddings;
  std::string html;
  bool json = false;
  bool quiet = false;

  // index only.
  int save_every = 10;  // save the index every N batches (0: only at the end)
  bool overwrite = false;
  std::string backend = "flat";  // index backend for a new index: the library's name ("ivf" is "ivf-flat")
  bool prune = false;
};

// Parses argv; throws UsageError. `help` is set for -h/--help and `version` for --version (command
// may be kNone for both).
Args parse_args(int argc, char** argv);

// Usage text: the overview for kNone, else the command's own page.
std::string usage(Command command);

}  // namespace retrieve
