// internvl-retrieve: `index --prune` without PATHs.
#include "prune.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "util.h"

namespace retrieve {

int run_prune_only(const Args& args) {
  const auto start = std::chrono::steady_clock::now();
  if (args.overwrite) throw ToolError("--overwrite with --prune and no PATH would leave an empty index; drop one of them");
  std::error_code ec;
  if (!std::filesystem::exists(args.index_path, ec)) {
    throw ToolError("index " + args.index_path + " does not exist: nothing to prune");
  }
  auto index = internvl::Index::load(args.index_path);
  const auto gone = entries_gone(index.ids(), {});
  const int64_t removed = gone.empty() ? 0 : index.remove(gone);
  if (removed > 0) index.save(args.index_path);
  for (const auto& id : gone) info("removed " + retrieve::quoted(id) + " (file no longer exists)");
  const char* mode = index.mode() == internvl::EmbedMode::kG ? "InternVL-G" : "InternVL-C";
  if (args.json) {
    // The same fields as an index run that adds, so scripts read one shape.
    const nlohmann::ordered_json out = {
        {"command", "index"},
        {"index", args.index_path},
        {"model_id", index.model_id()},
        {"mode", internvl::to_string(index.mode())},
        {"found", 0},
        {"already_indexed", 0},
        {"added", 0},
        {"skipped", nlohmann::ordered_json::array()},
        {"removed", removed},
        {"ignored_files", 0},
        {"size", index.size()},
        {"interrupted", false},
        {"seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()},
        {"images_per_second", 0.0}};
    std::printf("%s\n", out.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace).c_str());
  } else {
    std::printf("%s: %lld removed (files no longer exist); the index holds %lld image(s) (%s)\n",
                args.index_path.c_str(), static_cast<long long>(removed), static_cast<long long>(index.size()), mode);
  }
  return 0;
}

}  // namespace retrieve
