#include "io/hf_cache.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "common/check.h"

namespace fs = std::filesystem;

namespace internvl::io {
namespace {

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

// An id is ORG/NAME with no other slash, no "..", and characters the hub allows.
bool is_model_id(const std::string& id) {
  const auto slash = id.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == id.size() || id.find('/', slash + 1) != std::string::npos)
    return false;
  if (id.find("..") != std::string::npos) return false;
  for (const char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                    c == '_' || c == '.' || c == '/';
    if (!ok) return false;
  }
  return true;
}

bool is_plain_name(const std::string& s) {
  if (s.empty() || s == "." || s == "..") return false;
  return s.find('/') == std::string::npos && s.find('\\') == std::string::npos;
}

}  // namespace

std::vector<std::string> hf_hub_cache_dirs() {
  std::vector<std::string> dirs;
  const auto add = [&](const std::string& dir) {
    if (!dir.empty() && std::find(dirs.begin(), dirs.end(), dir) == dirs.end()) dirs.push_back(dir);
  };
  add(env("HF_HUB_CACHE"));
  add(env("HUGGINGFACE_HUB_CACHE"));
  if (!env("HF_HOME").empty()) add(env("HF_HOME") + "/hub");
  if (!env("XDG_CACHE_HOME").empty()) add(env("XDG_CACHE_HOME") + "/huggingface/hub");
  if (!env("HOME").empty()) add(env("HOME") + "/.cache/huggingface/hub");
  return dirs;
}

std::string resolve_model_directory(const std::string& model) {
  std::error_code ec;
  if (fs::is_directory(model, ec)) return model;
  std::string id = model, revision = "main";
  if (const auto at = model.rfind('@'); at != std::string::npos) {
    id = model.substr(0, at);
    revision = model.substr(at + 1);
  }
  INTERNVL_CHECK(is_model_id(id) && is_plain_name(revision), ConfigError, "model '", model,
                 "' is not a folder (nor a Hugging Face id ORG/NAME[@REVISION])");
  std::string repo = id;
  repo.replace(repo.find('/'), 1, "--");
  std::string looked;
  for (const auto& cache : hf_hub_cache_dirs()) {
    const fs::path root = fs::path(cache) / ("models--" + repo);
    looked += "\n  " + root.string();
    if (!fs::is_directory(root, ec)) continue;
    // refs/<revision> holds the commit of a branch or tag; a commit hash names its snapshot directly.
    std::string commit = revision;
    std::ifstream ref(root / "refs" / revision);
    if (ref.good()) std::getline(ref, commit);
    while (!commit.empty() && (commit.back() == '\n' || commit.back() == '\r' || commit.back() == ' ')) commit.pop_back();
    if (!is_plain_name(commit)) continue;
    const fs::path snapshot = root / "snapshots" / commit;
    if (fs::is_directory(snapshot, ec)) return snapshot.string();
    looked += " (no snapshot " + commit + ")";
  }
  INTERNVL_THROW(ConfigError, "model '", model, "' is neither a folder nor in the local Hugging Face cache; looked in:",
                 looked.empty() ? std::string("\n  (no cache folder: set HF_HUB_CACHE or HF_HOME)") : looked,
                 "\ndownload it with: huggingface-cli download ", id, revision == "main" ? "" : " --revision " + revision);
}

}  // namespace internvl::io
