// internvl-vision: preprocess images as a checkpoint's official pipeline does and run its
// InternViT; prints each image's tiles and feature statistics.
#include <ATen/ATen.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "../common/suggest.h"
#include "../common/user_terms.h"
#include "internvl/internvl.h"
#include "internvl/torch.h"

namespace {

// Bad command line: message, a hint to --help, exit status 2 (as the other tools).
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

void usage(std::FILE* out) {
  std::fputs(
      "usage: internvl-vision -m DIR [--device cpu|cuda|cuda:N] [--dtype fp32|bf16|fp16] [--layer N] IMAGE...\n"
      "\n"
      "Runs the checkpoint's own image preprocessing (InternVL-C/G: square resize; chat models:\n"
      "dynamic tiles + thumbnail) and its InternViT on each IMAGE, and prints the number of tiles\n"
      "and statistics of the vision features.\n"
      "\n"
      "  -m, --model DIR|ID       checkpoint folder, or a Hugging Face id in the local cache\n"
      "  --device cpu|cuda|cuda:N where to run (default cpu)\n"
      "  --dtype fp32|bf16|fp16   compute dtype (default fp32)\n"
      "  --layer N                hidden state as the official hidden_states list indexes it\n"
      "                           (-1 = last layer, default; 0 = embeddings)\n"
      "  -h, --help               show this help\n"
      "  --version                print the version and exit\n"
      "\n"
      "Exit status: 0 every image done, 1 an error or an unreadable image (reported, skipped),\n"
      "2 bad usage.\n",
      out);
}

int parse_layer(const std::string& text) {
  errno = 0;
  char* end = nullptr;
  const long value = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE || value < -100000 || value > 100000) {
    throw UsageError("--layer expects an integer, got '" + text + "'");
  }
  return static_cast<int>(value);
}

struct Args {
  std::string model_dir;
  internvl::LoadOptions options;
  int layer = -1;
  std::vector<std::string> images;
  bool help = false;
  bool version = false;
};

Args parse_args(int argc, char** argv) {
  const std::vector<std::string> flags = {"--model", "--device", "--dtype", "--layer", "--help", "--version"};
  Args args;
  bool options_done = false;  // after "--" every argument is an image
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (options_done || arg.empty() || arg[0] != '-' || arg == "-") {
      args.images.push_back(arg);
      continue;
    }
    if (arg == "--") {
      options_done = true;
      continue;
    }
    std::optional<std::string> inline_value;  // --flag=value
    if (const auto eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      inline_value = arg.substr(eq + 1);
      arg.resize(eq);
    }
    auto value = [&]() -> std::string {
      if (inline_value) return *inline_value;
      if (i + 1 >= argc) throw UsageError(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "-h" || arg == "--help") {
      args.help = true;
    } else if (arg == "--version") {
      args.version = true;
    } else if (arg == "-m" || arg == "--model") {
      args.model_dir = value();
      if (args.model_dir.empty()) throw UsageError("--model needs a folder");
    } else if (arg == "--device") {
      try {
        internvl::set_device(args.options, value());
      } catch (const internvl::Error& e) {
        throw UsageError(std::string("--device: ") + e.what());
      }
    } else if (arg == "--dtype") {
      try {
        args.options.dtype = internvl::parse_dtype(value());
      } catch (const internvl::Error& e) {
        throw UsageError(std::string("--dtype: ") + e.what());
      }
    } else if (arg == "--layer") {
      args.layer = parse_layer(value());
    } else {
      throw UsageError("unknown option " + arg + tool_common::did_you_mean(arg, flags));
    }
  }
  if (args.help || args.version) return args;
  if (args.model_dir.empty()) throw UsageError("--model DIR is required");
  if (args.images.empty()) throw UsageError("no IMAGE given");
  return args;
}

int run(int argc, char** argv) {
  Args args;
  try {
    args = parse_args(argc, argv);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "internvl-vision: %s\n(internvl-vision --help shows the options)\n", e.what());
    return 2;
  }
  if (args.help) {
    usage(stdout);
    return 0;
  }
  if (args.version) {
    std::printf("internvl-vision %s\n", INTERNVL_VERSION_STRING);
    return 0;
  }
  const auto start = std::chrono::steady_clock::now();
  auto load = args.options;
  load.parts = internvl::ModelParts::kVision;  // the language model / QLLaMA stays on disk
  const auto model = internvl::Model::load(args.model_dir, load);
  const auto& info = model.info();
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("model %s: %s + %s, InternViT %d layers x %d (%s), %d px tiles, %zu parameters, vision part read in %.2f s\n",
              info.path.c_str(), info.architecture.c_str(), info.language_model.c_str(), info.vision_layers,
              info.vision_hidden_size, info.vision_norm.c_str(), info.image_size, info.num_parameters, load_s);
  if (!info.unused_weights.empty()) {
    std::printf("  (%zu checkpoint tensors belong to components this tool does not run)\n",
                info.unused_weights.size());
  }
  int failures = 0;
  for (const auto& path : args.images) {
    try {
      const auto t0 = std::chrono::steady_clock::now();
      const auto pixels = internvl::torch_adapter::preprocess(model, internvl::Image::from_file(path));
      const auto hidden = internvl::torch_adapter::vision_hidden_state(model, pixels, args.layer).to(at::kFloat);
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      const auto cls = hidden.select(1, 0);
      std::printf("%s: %lld tile(s) -> features [%lld, %lld, %lld], CLS norm %.4f, mean %.5f, std %.5f (%.1f ms)\n",
                  path.c_str(), static_cast<long long>(pixels.size(0)), static_cast<long long>(hidden.size(0)),
                  static_cast<long long>(hidden.size(1)), static_cast<long long>(hidden.size(2)),
                  cls.norm(2, -1).mean().item<double>(), hidden.mean().item<double>(), hidden.std().item<double>(),
                  ms);
    } catch (const internvl::ImageError& e) {
      std::fprintf(stderr, "skipping %s: %s\n", path.c_str(), e.what());
      ++failures;
    }
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const internvl::Error& e) {
    std::fprintf(stderr, "error: %s\n", tool_common::in_user_terms(e.what()).c_str());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
