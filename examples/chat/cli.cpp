// internvl-chat: command-line parsing.
#include "cli.h"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <random>

#include "../common/suggest.h"

namespace chat_tool {

namespace {

long long parse_integer(const std::string& flag, const std::string& text, long long min, long long max) {
  errno = 0;
  char* end = nullptr;
  const long long value = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || end == nullptr || *end != '\0' || errno == ERANGE || std::isspace(static_cast<unsigned char>(text[0])))
    throw UsageError(flag + " expects an integer, got '" + text + "'");
  if (value < min || value > max)
    throw UsageError(flag + " must be in [" + std::to_string(min) + ", " + std::to_string(max) + "], got " + text);
  return value;
}

unsigned long long parse_unsigned(const std::string& flag, const std::string& text) {
  errno = 0;
  char* end = nullptr;
  const unsigned long long value = std::strtoull(text.c_str(), &end, 10);
  if (text.empty() || !std::isdigit(static_cast<unsigned char>(text[0])) || *end != '\0' || errno == ERANGE)
    throw UsageError(flag + " expects a non-negative integer, got '" + text + "'");
  return value;
}

double parse_real(const std::string& flag, const std::string& text) {
  errno = 0;
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(value) ||
      std::isspace(static_cast<unsigned char>(text[0])))
    throw UsageError(flag + " expects a number, got '" + text + "'");
  return value;
}

// Every long flag, for "did you mean".
const std::vector<std::string> kFlags = {
    "--help",         "--version", "--model",      "--image", "--prompt", "--interactive",
    "--system",       "--max-tiles", "--max-new-tokens", "--stop", "--greedy", "--sample",
    "--temperature",  "--temp",    "--top-k",      "--top-p", "--repetition-penalty", "--seed",
    "--device",       "--dtype",   "--threads",    "--dump",  "--batch",  "--output", "--max-batch-size",
};

}  // namespace

void print_usage(std::FILE* out) {
  std::fputs(
      "usage: internvl-chat --model DIR [--image FILE]... [--prompt TEXT | --interactive] [options]\n"
      "       internvl-chat --model DIR --batch IN.jsonl [--output OUT.jsonl] [options]\n"
      "\n"
      "Chat with an InternVL-Chat checkpoint (InternVL2/2.5/3/3.5, InternVL-Chat-V1-x) about images.\n"
      "With --prompt, answers once (streamed to stdout) and exits; without it (or with\n"
      "--interactive) starts a multi-turn conversation read line by line from stdin.\n"
      "\n"
      "  -m, --model DIR|ID       checkpoint folder (config.json + safetensors + tokenizer), or a\n"
      "                           Hugging Face id already in the local cache (ORG/NAME[@REV])\n"
      "  --image FILE             an image for the conversation; repeat for several\n"
      "  -p, --prompt TEXT        the question, as the official chat() takes it: without an\n"
      "                           \"<image>\" placeholder, \"<image>\\n\" is prepended (for several\n"
      "                           images \"Image-1: <image>\\n...\", as the official README);\n"
      "                           \"-\" reads the question from stdin\n"
      "  --interactive            start the conversation prompt (after --prompt's answer, if given)\n"
      "  --system TEXT            system message (default: the template's)\n"
      "  --max-tiles N            dynamic tiles per image (default 0: the config's max_dynamic_patch)\n"
      "  -n, --max-new-tokens N   longest answer in tokens (default 512)\n"
      "  --stop TEXT              end the answer before TEXT (repeatable)\n"
      "  --greedy                 greedy decoding (the default; overrides the sampling flags)\n"
      "  --sample                 sample instead of greedy decoding\n"
      "  --temperature T, --temp  sampling temperature (default 1); implies --sample; 0 is greedy\n"
      "  --top-k K                keep the K most likely tokens (0 = off); implies --sample\n"
      "  --top-p P                nucleus sampling, P in (0, 1] (1 = off); implies --sample\n"
      "  --repetition-penalty R   penalise repeated tokens (> 0, 1 = off); implies --sample\n"
      "  --seed S                 sampling seed (default: random); implies --sample\n"
      "  --device cpu|cuda|cuda:N where to run (default cpu)\n"
      "  --dtype fp32|bf16|fp16   compute dtype (default fp32)\n"
      "  --threads N              CPU threads (default: LibTorch's)\n"
      "  --dump FILE.safetensors  save input_ids, output_ids and first_logits of the answer\n"
      "                           (the last turn, in a conversation)\n"
      "  --batch IN.jsonl         answer every line of IN.jsonl in one batched run: each line\n"
      "                           {\"id\", \"question\", \"images\": [FILE...], \"max_new_tokens\"} and\n"
      "                           optionally temperature, top_k, top_p, repetition_penalty, seed,\n"
      "                           stop, sample, system, max_tiles (the flags are the defaults)\n"
      "  --output OUT.jsonl       where --batch writes {\"id\", \"response\", \"output_ids\",\n"
      "                           \"finish_reason\"} (or {\"id\", \"error\"}) per line, in input\n"
      "                           order (default: stdout)\n"
      "  --max-batch-size N       requests decoded together (default 8)\n"
      "  -h, --help               show this help\n"
      "  --version                print the version and exit\n"
      "\n"
      "Conversation commands: /image PATH, /reset, /stop TEXT, /save FILE, /load FILE, /help,\n"
      "/quit (or Ctrl-D). End a line with '\\' to continue the question on the next line.\n"
      "Ctrl-C stops the answer being generated.\n",
      out);
#ifdef INTERNVL_CHAT_HAVE_LIBEDIT
  std::fputs("In a terminal, lines are edited with libedit: arrows, history (up/down), long pastes.\n", out);
#else
  std::fputs("Built without libedit: lines are read plainly, without editing or history.\n", out);
#endif
}

Options parse_command_line(int argc, const char* const* argv) {
  Options options;
  bool greedy = false, sampling = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::optional<std::string> inline_value;  // --flag=value
    if (arg.rfind("--", 0) == 0) {
      const auto eq = arg.find('=');
      if (eq != std::string::npos) {
        inline_value = arg.substr(eq + 1);
        arg = arg.substr(0, eq);
      }
    }
    auto value = [&]() -> std::string {
      if (inline_value) return *inline_value;
      if (i + 1 >= argc) throw UsageError(arg + " needs a value");
      return argv[++i];
    };
    auto no_value = [&]() {
      if (inline_value) throw UsageError(arg + " takes no value");
    };
    if (arg == "-h" || arg == "--help") {
      no_value();
      options.help = true;
    } else if (arg == "--version") {
      no_value();
      options.version = true;
    } else if (arg == "--model" || arg == "-m") {
      options.model_dir = value();
      if (options.model_dir.empty()) throw UsageError("--model needs a directory");
    } else if (arg == "--image") {
      options.images.push_back(value());
      if (options.images.back().empty()) throw UsageError("--image needs a file");
    } else if (arg == "--prompt" || arg == "-p") {
      options.prompt = value();
    } else if (arg == "--interactive") {
      no_value();
      options.interactive = true;
    } else if (arg == "--system") {
      options.system_message = value();
    } else if (arg == "--max-tiles") {
      options.max_tiles = static_cast<int>(parse_integer(arg, value(), 0, 1 << 16));
    } else if (arg == "--max-new-tokens" || arg == "-n") {
      options.generation.max_new_tokens =
          static_cast<int>(parse_integer(arg, value(), 1, std::numeric_limits<int>::max()));
    } else if (arg == "--greedy") {
      no_value();
      greedy = true;
    } else if (arg == "--sample") {
      no_value();
      sampling = true;
    } else if (arg == "--temperature" || arg == "--temp") {
      const double t = parse_real(arg, value());
      if (!(t >= 0)) throw UsageError(arg + " must be >= 0 (0: greedy)");
      // 0 is greedy decoding, as llama.cpp and transformers users expect.
      if (t == 0) {
        greedy = true;
      } else {
        options.generation.temperature = t;
        sampling = true;
      }
    } else if (arg == "--top-k") {
      options.generation.top_k = static_cast<int>(parse_integer(arg, value(), 0, std::numeric_limits<int>::max()));
      sampling = true;
    } else if (arg == "--top-p") {
      const double p = parse_real(arg, value());
      if (!(p > 0 && p <= 1)) throw UsageError("--top-p must be in (0, 1]");
      options.generation.top_p = p;
      sampling = true;
    } else if (arg == "--repetition-penalty") {
      const double r = parse_real(arg, value());
      if (!(r > 0)) throw UsageError("--repetition-penalty must be > 0");
      options.generation.repetition_penalty = r;
      sampling = true;
    } else if (arg == "--seed") {
      options.generation.seed = parse_unsigned(arg, value());
      options.seed_given = true;
      sampling = true;
    } else if (arg == "--device") {
      try {
        internvl::set_device(options.load, value());
      } catch (const internvl::Error& e) {
        throw UsageError(std::string("--device: ") + e.what());
      }
    } else if (arg == "--stop") {
      options.generation.stop_strings.push_back(value());
      if (options.generation.stop_strings.back().empty()) throw UsageError("--stop needs a non-empty string");
    } else if (arg == "--dtype") {
      try {
        options.load.dtype = internvl::parse_dtype(value());
      } catch (const internvl::Error& e) {
        throw UsageError(std::string("--dtype: ") + e.what());
      }
    } else if (arg == "--threads") {
      options.load.num_threads = static_cast<int>(parse_integer(arg, value(), 0, 4096));
    } else if (arg == "--batch") {
      options.batch_input = value();
      if (options.batch_input.empty()) throw UsageError("--batch needs a file");
    } else if (arg == "--output" || arg == "-o") {
      options.batch_output = value();
      if (options.batch_output.empty()) throw UsageError("--output needs a file");
    } else if (arg == "--max-batch-size") {
      options.load.max_batch_size = static_cast<int>(parse_integer(arg, value(), 1, 4096));
    } else if (arg == "--dump") {
      options.dump_path = value();
      if (options.dump_path.empty()) throw UsageError("--dump needs a file name");
    } else if (!arg.empty() && arg[0] == '-') {
      throw UsageError("unknown option " + arg + tool_common::did_you_mean(arg, kFlags));
    } else {
      throw UsageError("unexpected argument '" + arg + "' (images go after --image, the question after --prompt)");
    }
  }
  options.generation.do_sample = sampling && !greedy;
  if (options.generation.do_sample && !options.seed_given) options.generation.seed = std::random_device{}();
  if (!options.help && !options.version && options.model_dir.empty()) throw UsageError("--model DIR is required");
  if (!options.batch_input.empty() && (options.prompt || options.interactive || !options.images.empty() ||
                                       !options.dump_path.empty())) {
    throw UsageError("--batch takes its questions and images from the file: no --prompt, --interactive, --image or --dump");
  }
  if (options.batch_input.empty() && !options.batch_output.empty()) throw UsageError("--output goes with --batch");
  return options;
}

}  // namespace chat_tool
