// internvl-inspect: checks a downloaded checkpoint folder before use (no weights are loaded).
// Exit status: 0 usable, 1 problems found, 2 usage error.
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "../common/suggest.h"
#include "internvl/internvl.h"

namespace {

void usage(std::FILE* out) {
  std::fputs(
      "usage: internvl-inspect [--all] [--json] DIR\n"
      "       internvl-inspect [--all] [--json] -m DIR\n"
      "\n"
      "Checks config.json, the safetensors files, the tokenizer and the chat template of a\n"
      "checkpoint folder, lists missing/unexpected tensors and estimates memory per dtype.\n"
      "No weights are loaded.\n"
      "\n"
      "  -m, --model DIR|ID  the folder (or a Hugging Face id in the local cache); same as DIR\n"
      "  --all               list every missing, mismatched and unexpected tensor (default: the first 10)\n"
      "  --json              the report as one JSON object on stdout (every list complete)\n"
      "  -h, --help          show this help\n"
      "  --version           print the version and exit\n"
      "\n"
      "Exit status: 0 the folder is usable, 1 problems found, 2 bad usage.\n",
      out);
}

int usage_error(const std::string& message) {
  std::fprintf(stderr, "internvl-inspect: %s\n(internvl-inspect --help shows the options)\n", message.c_str());
  return 2;
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

// The whole report, field for field as CheckpointReport names them, plus `ok`.
nlohmann::ordered_json report_json(const internvl::CheckpointReport& report) {
  nlohmann::ordered_json memory = nlohmann::ordered_json::array();
  for (const auto& m : report.memory) {
    memory.push_back({{"dtype", internvl::to_string(m.dtype)},
                      {"device", internvl::to_string(m.device)},
                      {"weight_bytes", m.weight_bytes},
                      {"kv_cache_bytes", m.kv_cache_bytes},
                      {"host_peak_bytes", m.host_peak_bytes},
                      {"device_bytes", m.device_bytes}});
  }
  return {{"path", report.path},
          {"found", report.found},
          {"architecture", report.architecture},
          {"language_model", report.language_model},
          {"chat_template", report.chat_template},
          {"template_supported", report.template_supported},
          {"has_tokenizer", report.has_tokenizer},
          {"tokenizer", report.tokenizer},
          {"num_parameters", report.num_parameters},
          {"checkpoint_tensors", report.checkpoint_tensors},
          {"checkpoint_elements", report.checkpoint_elements},
          {"checkpoint_bytes", report.checkpoint_bytes},
          {"checkpoint_dtypes", report.checkpoint_dtypes},
          {"missing_shards", report.missing_shards},
          {"missing", report.missing},
          {"mismatched", report.mismatched},
          {"unexpected", report.unexpected},
          {"memory", std::move(memory)},
          {"problems", report.problems},
          {"ok", report.ok()}};
}

}  // namespace

int main(int argc, char** argv) {
  std::string directory;
  bool all = false, json = false;
  const std::vector<std::string> flags = {"--help", "--version", "--all", "--json", "--model"};
  auto set_folder = [&](const std::string& folder) -> int {
    if (folder.empty()) return usage_error("empty folder name");
    if (!directory.empty()) return usage_error("more than one folder given");
    directory = folder;
    return 0;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    int status = 0;
    if (arg == "-h" || arg == "--help") {
      usage(stdout);
      return 0;
    } else if (arg == "--version") {
      std::printf("internvl-inspect %s\n", INTERNVL_VERSION_STRING);
      return 0;
    } else if (arg == "--all") {
      all = true;
    } else if (arg == "--json") {
      json = true;
    } else if (arg == "-m" || arg == "--model") {
      if (i + 1 >= argc) return usage_error(arg + " needs a folder");
      status = set_folder(argv[++i]);
    } else if (arg.rfind("--model=", 0) == 0) {
      status = set_folder(arg.substr(8));
    } else if (!arg.empty() && arg[0] == '-') {
      return usage_error("unknown option " + arg + tool_common::did_you_mean(arg, flags));
    } else {
      status = set_folder(arg);
    }
    if (status != 0) return status;
  }
  if (directory.empty()) return usage_error("no folder given (internvl-inspect DIR)");

  const internvl::CheckpointReport report = internvl::inspect_checkpoint(directory);
  if (json) {
    std::printf("%s\n", report_json(report).dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace).c_str());
    return report.ok() ? 0 : 1;
  }
  // No folder: a report of empty rows would only hide the one thing that went wrong.
  if (!report.found) {
    for (const auto& problem : report.problems) std::fprintf(stderr, "internvl-inspect: error: %s\n", problem.c_str());
    return 1;
  }
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
  print_list("missing shard files", report.missing_shards, true);
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
