// internvl-retrieve: command-line parsing and usage text.
#include "cli.h"

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "../common/suggest.h"

namespace retrieve {

namespace {

constexpr unsigned kIndex = 1u << 0;
constexpr unsigned kSearch = 1u << 1;
constexpr unsigned kClassify = 1u << 2;
constexpr unsigned kEmbed = 1u << 3;
constexpr unsigned kAll = kIndex | kSearch | kClassify | kEmbed;

unsigned bit(Command command) {
  switch (command) {
    case Command::kIndex: return kIndex;
    case Command::kSearch: return kSearch;
    case Command::kClassify: return kClassify;
    case Command::kEmbed: return kEmbed;
    case Command::kNone: break;
  }
  return 0;
}

enum class Arity { kFlag, kOne, kMany };

struct OptionSpec {
  const char* name;
  Arity arity;
  unsigned commands;
};

const OptionSpec kOptions[] = {
    {"--model", Arity::kOne, kAll},          {"--mode", Arity::kOne, kAll},
    {"--device", Arity::kOne, kAll},         {"--dtype", Arity::kOne, kAll},
    {"--threads", Arity::kOne, kAll},        {"--batch-size", Arity::kOne, kAll},
    {"--top-k", Arity::kOne, kSearch | kClassify | kEmbed},
    {"--index", Arity::kOne, kIndex | kSearch},
    {"--query", Arity::kOne, kSearch},       {"--query-image", Arity::kOne, kSearch},
    {"--images", Arity::kMany, kIndex | kClassify | kEmbed},
    {"--texts", Arity::kMany, kEmbed},       {"--labels", Arity::kOne, kClassify},
    {"--templates", Arity::kOne, kClassify}, {"--save-embeddings", Arity::kOne, kEmbed},
    {"--html", Arity::kOne, kSearch | kClassify | kEmbed},
    {"--json", Arity::kFlag, kAll},          {"--quiet", Arity::kFlag, kAll},
    {"--save-every", Arity::kOne, kIndex},   {"--overwrite", Arity::kFlag, kIndex},
    {"--prune", Arity::kFlag, kIndex},       {"--backend", Arity::kOne, kIndex},
};

const OptionSpec* find_option(const std::string& name) {
  for (const auto& spec : kOptions) {
    if (name == spec.name) return &spec;
  }
  return nullptr;
}

// The flags `command` takes, for "did you mean".
std::vector<std::string> known_flags(Command command) {
  std::vector<std::string> names = {"--help", "--version"};
  for (const auto& spec : kOptions) {
    if (spec.commands & bit(command)) names.push_back(spec.name);
  }
  return names;
}

Command parse_command(const std::string& word) {
  if (word == "index") return Command::kIndex;
  if (word == "search") return Command::kSearch;
  if (word == "classify") return Command::kClassify;
  if (word == "embed") return Command::kEmbed;
  return Command::kNone;
}

bool is_option(const std::string& arg) { return arg.size() >= 2 && arg[0] == '-' && arg[1] == '-'; }

int parse_int(const std::string& option, const std::string& text, int min_value) {
  errno = 0;
  char* end = nullptr;
  const long value = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || end == nullptr || *end != '\0' || errno == ERANGE || value < min_value || value > INT_MAX) {
    throw UsageError(option + " needs an integer >= " + std::to_string(min_value) + ", got '" + text + "'");
  }
  return static_cast<int>(value);
}

// "cpu", "cuda" or "cuda:N" (the library's parser, shared by the tools).
void parse_device_option(const std::string& text, internvl::LoadOptions& load) {
  try {
    internvl::set_device(load, text);
  } catch (const internvl::Error& e) {
    throw UsageError(std::string("--device: ") + e.what());
  }
}

void apply(Args& args, const std::string& name, const std::string& value) {
  try {
    if (name == "--model") args.model_dir = value;
    else if (name == "--mode") args.mode = internvl::parse_embed_mode(value);
    else if (name == "--device") parse_device_option(value, args.load);
    else if (name == "--dtype") args.load.dtype = internvl::parse_dtype(value);
    else if (name == "--threads") args.load.num_threads = parse_int(name, value, 0);
    else if (name == "--batch-size") args.batch_size = parse_int(name, value, 1);
    else if (name == "--top-k") { args.top_k = parse_int(name, value, 1); args.top_k_given = true; }
    else if (name == "--index") args.index_path = value;
    else if (name == "--query") args.queries.push_back({false, value});
    else if (name == "--query-image") args.queries.push_back({true, value});
    else if (name == "--images") args.images.push_back(value);
    else if (name == "--texts") args.texts.push_back(value);
    else if (name == "--labels") args.labels_path = value;
    else if (name == "--templates") args.templates_path = value;
    else if (name == "--save-embeddings") args.save_embeddings = value;
    else if (name == "--html") args.html = value;
    else if (name == "--save-every") args.save_every = parse_int(name, value, 0);
    else if (name == "--backend") {
      // "ivf" is what people type; the library calls it "ivf-flat". run_index sizes its cells to
      // the images and trains on all of them at once (one small batch would make a bad index).
      if (value == "ivf" || value == "ivf-flat") args.backend = "ivf-flat";
      else if (value == "flat" || value == "hnsw") args.backend = value;
      else throw UsageError("--backend must be flat, ivf or hnsw, got '" + value + "'");
    }
  } catch (const internvl::Error& e) {
    throw UsageError(name + ": " + e.what());
  }
  if ((name == "--model" || name == "--index" || name == "--labels" || name == "--templates" ||
       name == "--save-embeddings" || name == "--html" || name == "--images" || name == "--query-image") &&
      value.empty()) {
    throw UsageError(name + " needs a non-empty path");
  }
}

void apply_flag(Args& args, const std::string& name) {
  if (name == "--json") args.json = true;
  else if (name == "--quiet") args.quiet = true;
  else if (name == "--overwrite") args.overwrite = true;
  else if (name == "--prune") args.prune = true;
}

void check_required(const Args& args) {
  const bool prune_only = args.command == Command::kIndex && args.prune && args.images.empty();  // loads no model
  if (args.model_dir.empty() && !prune_only) throw UsageError("--model DIR is required");
  switch (args.command) {
    case Command::kIndex:
      if (args.index_path.empty()) throw UsageError("index needs --index FILE");
      if (args.images.empty() && !args.prune)
        throw UsageError("index needs at least one folder or image to add (or --prune alone to drop deleted files)");
      break;
    case Command::kSearch:
      if (args.index_path.empty()) throw UsageError("search needs --index FILE");
      if (args.queries.empty()) throw UsageError("search needs at least one --query TEXT or --query-image PATH");
      break;
    case Command::kClassify:
      if (args.labels_path.empty()) throw UsageError("classify needs --labels FILE");
      if (args.images.empty()) throw UsageError("classify needs at least one image or folder");
      break;
    case Command::kEmbed:
      if (args.images.empty() && args.texts.empty()) throw UsageError("embed needs --images PATH... and/or --texts TEXT...");
      break;
    case Command::kNone:
      break;
  }
}

}  // namespace

const char* command_name(Command command) {
  switch (command) {
    case Command::kIndex: return "index";
    case Command::kSearch: return "search";
    case Command::kClassify: return "classify";
    case Command::kEmbed: return "embed";
    case Command::kNone: break;
  }
  return "";
}

Args parse_args(int argc, char** argv) {
  Args args;
  if (argc < 2) throw UsageError("missing command");
  const std::string first = argv[1];
  if (first == "-h" || first == "--help") {
    args.help = true;
    return args;
  }
  if (first == "--version") {
    args.version = true;
    return args;
  }
  if (first == "help") {
    args.help = true;
    if (argc > 2) {
      args.command = parse_command(argv[2]);
      if (args.command == Command::kNone) {
        throw UsageError(std::string("unknown command '") + argv[2] + "'" +
                         tool_common::did_you_mean(argv[2], {"index", "search", "classify", "embed"}));
      }
    }
    return args;
  }
  args.command = parse_command(first);
  if (args.command == Command::kNone) {
    if (first.size() > 1 && first[0] == '-') {
      throw UsageError("missing command (index, search, classify or embed) before " + first);
    }
    throw UsageError("unknown command '" + first + "'" +
                     tool_common::did_you_mean(first, {"index", "search", "classify", "embed"}));
  }

  bool options_done = false;  // after a bare "--" everything is positional
  for (int i = 2; i < argc; ++i) {
    // -m is the one short flag, as llama.cpp's tools spell it.
    const std::string arg = !options_done && std::strcmp(argv[i], "-m") == 0 ? "--model" : argv[i];
    if (!options_done && (arg == "-h" || arg == "--help")) {
      args.help = true;
      return args;
    }
    if (!options_done && arg == "--version") {
      args.version = true;
      return args;
    }
    if (!options_done && arg == "--") {
      options_done = true;
      continue;
    }
    if (options_done || !is_option(arg)) {
      if (!options_done && arg.size() > 1 && arg[0] == '-') {
        throw UsageError("unknown option " + arg + tool_common::did_you_mean(arg, known_flags(args.command)));
      }
      if (args.command == Command::kSearch) args.queries.push_back({false, arg});  // bare words: text queries
      else if (args.command == Command::kIndex || args.command == Command::kClassify ||
               args.command == Command::kEmbed) {
        if (arg.empty()) throw UsageError("empty image path");
        args.images.push_back(arg);
      }
      continue;
    }
    // --name or --name=value
    std::string name = arg;
    std::optional<std::string> inline_value;
    if (const auto eq = arg.find('='); eq != std::string::npos) {
      name = arg.substr(0, eq);
      inline_value = arg.substr(eq + 1);
    }
    const OptionSpec* spec = find_option(name);
    if (spec == nullptr) throw UsageError("unknown option " + name + tool_common::did_you_mean(name, known_flags(args.command)));
    if ((spec->commands & bit(args.command)) == 0) {
      throw UsageError(name + " is not an option of '" + command_name(args.command) + "'");
    }
    switch (spec->arity) {
      case Arity::kFlag:
        if (inline_value) throw UsageError(name + " takes no value");
        apply_flag(args, name);
        break;
      case Arity::kOne: {
        std::string value;
        if (inline_value) {
          value = *inline_value;
        } else {
          if (i + 1 >= argc || is_option(argv[i + 1])) {
            throw UsageError(name + " needs a value (write " + name + "=VALUE for a value starting with --)");
          }
          value = argv[++i];
        }
        apply(args, name, value);
        break;
      }
      case Arity::kMany: {
        size_t count = 0;
        if (inline_value) {
          apply(args, name, *inline_value);
          ++count;
        }
        while (i + 1 < argc && !is_option(argv[i + 1])) {
          apply(args, name, argv[++i]);
          ++count;
        }
        if (count == 0) throw UsageError(name + " needs at least one value");
        break;
      }
    }
  }
  check_required(args);
  return args;
}

std::string usage(Command command) {
  const char* common =
      "model options:\n"
      "  -m, --model DIR      InternVL-C/G checkpoint folder (config.json, *.safetensors, tokenizer.model)\n"
      "  --mode c|g           InternVL-C (attention pooling) or InternVL-G (QLLaMA); default c,\n"
      "                       or the mode the index was built with\n"
      "  --device cpu|cuda[:N]  where to run (default cpu)\n"
      "  --dtype fp32|bf16|fp16 compute dtype (default fp32)\n"
      "  --threads N          CPU threads (default: LibTorch's choice)\n"
      "  --batch-size N       inputs per forward pass (default 8)\n"
      "output options:\n"
      "  --json               one JSON document on stdout instead of text\n"
      "  --quiet              no progress or informational messages on stderr (warnings stay)\n"
      "  -h, --help           this help\n"
      "  --version            print the version and exit\n"
      "exit status: 0 success, 1 error, 2 bad usage, 130 interrupted (Ctrl-C)\n";
  switch (command) {
    case Command::kIndex:
      return std::string(
                 "usage: internvl-retrieve index --model DIR --index FILE.safetensors [options] PATH...\n"
                 "\n"
                 "Embeds every image under each PATH (folders are searched recursively; extensions jpg jpeg png\n"
                 "bmp gif webp tif tiff, any case; hidden files and folders are skipped) and adds it to the index,\n"
                 "creating the index if needed. Images are identified by their absolute path, so the index can be\n"
                 "searched from any directory. Images already in the index are not embedded again, so an\n"
                 "interrupted run (Ctrl-C saves what is done) resumes where it stopped. Unreadable images are\n"
                 "skipped with a warning.\n"
                 "\n"
                 "index options:\n"
                 "  --index FILE         the index (safetensors); created if absent\n"
                 "  --images PATH...     more folders or images (same as positional PATHs)\n"
                 "  --save-every N       save the index every N batches (default 10; 0: only at the end)\n"
                 "  --overwrite          start a new index even if FILE exists (e.g. of another model or mode)\n"
                 "  --prune              remove entries below the given folders whose files no longer exist;\n"
                 "                       with no PATH: every such entry, nothing added, no model loaded\n"
                 "  --backend B          for a new index: flat (exact, default), or, in builds with FAISS,\n"
                 "                       ivf (IVF-Flat: cells learnt from the images of the first run) or\n"
                 "                       hnsw (a graph); both approximate\n") +
             common;
    case Command::kSearch:
      return std::string(
                 "usage: internvl-retrieve search --model DIR --index FILE [options] [--query TEXT]...\n"
                 "                                [--query-image PATH]... [TEXT]...\n"
                 "\n"
                 "Ranks the indexed images by cosine similarity to each query (text, or an image) and prints\n"
                 "rank, score and id (the image path) of the best --top-k. Bare words are text queries.\n"
                 "\n"
                 "search options:\n"
                 "  --index FILE         an index made by 'internvl-retrieve index' with the same model\n"
                 "  --query TEXT         a text query (repeatable; --query=TEXT for text starting with --)\n"
                 "  --query-image PATH   an image query (repeatable)\n"
                 "  --top-k K            results per query (default 5)\n"
                 "  --html FILE          also write an HTML gallery of the results\n") +
             common;
    case Command::kClassify:
      return std::string(
                 "usage: internvl-retrieve classify --model DIR --labels FILE [--templates FILE] [options] PATH...\n"
                 "\n"
                 "Zero-shot classification: each class name is put through every template, the text embeddings\n"
                 "are averaged into one class embedding, and each image gets its --top-k classes with the\n"
                 "softmax probability over all classes. PATHs are images or folders (searched recursively);\n"
                 "unreadable images are skipped with a warning.\n"
                 "\n"
                 "classify options:\n"
                 "  --labels FILE        one class name per line (UTF-8; surrounding spaces and empty lines ignored)\n"
                 "  --templates FILE     one prompt template per line, each with a {} placeholder for the class\n"
                 "                       name (default: the built-in ImageNet-style templates)\n"
                 "  --images PATH...     same as positional PATHs\n"
                 "  --top-k K            classes per image (default 5)\n"
                 "  --html FILE          also write an HTML page of the images and their classes\n") +
             common;
    case Command::kEmbed:
      return std::string(
                 "usage: internvl-retrieve embed --model DIR [--images PATH...] [--texts TEXT...] [options]\n"
                 "\n"
                 "Embeds the given images and texts as the official encode_image / encode_text do. With both,\n"
                 "prints logits_per_image (exp(logit_scale) x cosine) and, per text, the images ranked.\n"
                 "Every image must be readable (rows correspond to the inputs). A flag that takes several\n"
                 "values takes every following argument up to the next one starting with --; texts may be \"\".\n"
                 "\n"
                 "embed options:\n"
                 "  --images PATH...     images or folders (searched recursively)\n"
                 "  --texts TEXT...      texts\n"
                 "  --save-embeddings FILE  write image_embeds [N,D], text_embeds [M,D] (unnormalised float32)\n"
                 "                       and logits_per_image [N,M] as safetensors\n"
                 "  --top-k K            images listed per text (default 5)\n"
                 "  --html FILE          also write an HTML page with the similarity matrix\n") +
             common;
    case Command::kNone:
      break;
  }
  return "usage: internvl-retrieve COMMAND -m DIR [options]\n"
         "\n"
         "Image search and zero-shot classification with InternVL-C / InternVL-G checkpoints.\n"
         "\n"
         "commands:\n"
         "  index     embed a folder of images into an index file (resumable)\n"
         "  search    query an index with texts or images\n"
         "  classify  zero-shot classify images against a list of class names\n"
         "  embed     embed images and texts; similarity matrix; save embeddings\n"
         "\n"
         "examples:\n"
         "  internvl-retrieve index    --model InternVL-14B-224px --index photos.safetensors ~/Pictures\n"
         "  internvl-retrieve search   --model InternVL-14B-224px --index photos.safetensors --query \"a red bus\"\n"
         "  internvl-retrieve classify --model InternVL-14B-224px --labels classes.txt ~/Pictures/inbox\n"
         "  internvl-retrieve embed    --model InternVL-14B-224px --images a.jpg b.jpg --texts \"a cat\" \"a dog\"\n"
         "\n"
         "'internvl-retrieve help COMMAND' (or COMMAND --help) describes a command and its options;\n"
         "--version prints the version.\n"
         "Exit status: 0 success, 1 error, 2 bad usage, 130 interrupted.\n";
}

}  // namespace retrieve
