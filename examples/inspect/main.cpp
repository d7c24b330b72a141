// internvl-inspect: checks a downloaded checkpoint folder before use (no weights are loaded).
// Exit status: 0 usable, 1 problems found, 2 usage error.
#include <cstdio>
#include <iostream>
#include <string>

#include "internvl/internvl.h"

namespace {

void usage() {
  std::cerr << "usage: internvl-inspect [--all] DIR\n"
               "Checks config.json, the safetensors files, the tokenizer and the chat template of a\n"
               "checkpoint folder, lists missing/unexpected tensors and estimates memory per dtype.\n"
               "  --all   list every missing, mismatched and unexpected tensor (default: the first 10)\n";
}

std::string human_bytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 4) {
    value /= 1024;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text, unit == 0 ? "%.0f %s" : "%.2f %s", value, units[unit]);
  return text;
}

void print_list(const char* title, const std::vector<std::string>& items, bool all) {
  if (items.empty()) return;
  std::printf("%s (%zu):\n", title, items.size());
  const std::size_t shown = all ? items.size() : std::min<std::size_t>(items.size(), 10);
  for (std::size_t i = 0; i < shown; ++i) std::printf("  %s\n", items[i].c_str());
  if (shown < items.size()) std::printf("  ... %zu more (--all lists them)\n", items.size() - shown);
}

}  // namespace

int main(int argc, char** argv) {
  std::string directory;
  bool all = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      usage();
      return 0;
    } else if (arg == "--all") {
      all = true;
    } else if (!arg.empty() && arg[0] == '-') {
      std::cerr << "error: unknown option " << arg << "\n";
      usage();
      return 2;
    } else if (directory.empty()) {
      directory = arg;
    } else {
      std::cerr << "error: more than one folder given\n";
      return 2;
    }
  }
  if (directory.empty()) {
    usage();
    return 2;
  }

  const internvl::CheckpointReport report = internvl::inspect_checkpoint(directory);
  std::printf("folder        %s\n", report.path.c_str());
  std::printf("architecture  %s\n", report.architecture.empty() ? "?" : report.architecture.c_str());
  std::printf("language      %s\n", report.language_model.empty() ? "?" : report.language_model.c_str());
  if (!report.chat_template.empty()) {
    std::printf("template      %s (%s)\n", report.chat_template.c_str(),
                report.template_supported ? "supported" : "NOT supported");
  }
  std::printf("tokenizer     %s\n", report.has_tokenizer ? (report.tokenizer + " ok").c_str() : "missing or unreadable");
  std::printf("parameters    %llu in the model, %llu elements in %llu checkpoint tensors (%s on disk)\n",
              static_cast<unsigned long long>(report.num_parameters),
              static_cast<unsigned long long>(report.checkpoint_elements),
              static_cast<unsigned long long>(report.checkpoint_tensors), human_bytes(report.checkpoint_bytes).c_str());
  std::string dtypes;
  for (const auto& [name, count] : report.checkpoint_dtypes) {
    dtypes += (dtypes.empty() ? "" : ", ") + name + " x" + std::to_string(count);
  }
  std::printf("dtypes        %s\n", dtypes.empty() ? "-" : dtypes.c_str());
  if (!report.memory.empty()) {
    std::printf("memory        %-6s %-5s %12s %12s %12s %12s\n", "dtype", "dev", "weights", "kv cache", "host peak",
                "gpu");
    for (const auto& m : report.memory) {
      std::printf("              %-6s %-5s %12s %12s %12s %12s\n", internvl::to_string(m.dtype),
                  internvl::to_string(m.device), human_bytes(m.weight_bytes).c_str(),
                  human_bytes(m.kv_cache_bytes).c_str(), human_bytes(m.host_peak_bytes).c_str(),
                  m.device == internvl::Device::kCUDA ? human_bytes(m.device_bytes).c_str() : "-");
    }
  }
  print_list("missing tensors", report.missing, all);
  print_list("mismatched tensors", report.mismatched, all);
  print_list("unexpected tensors (not used by this library)", report.unexpected, all);
  if (report.ok()) {
    std::printf("OK: the folder is complete\n");
    return 0;
  }
  std::printf("PROBLEMS (%zu):\n", report.problems.size());
  for (const auto& problem : report.problems) std::printf("  - %s\n", problem.c_str());
  return 1;
}
