// Model arguments as people type them: a checkpoint folder, or a Hugging Face model id
// ("OpenGVLab/InternVL3-8B", optionally "@revision") that `huggingface-cli download` left in the
// local cache. Nothing is downloaded: the cache is only read.
#pragma once

#include <string>
#include <vector>

namespace internvl::io {

// The hub cache folders searched, in order: $HF_HUB_CACHE, $HUGGINGFACE_HUB_CACHE, $HF_HOME/hub,
// $XDG_CACHE_HOME/huggingface/hub, ~/.cache/huggingface/hub (huggingface_hub's own rules).
std::vector<std::string> hf_hub_cache_dirs();

// `model` itself when it is a directory; otherwise, for "ORG/NAME[@REV]", the snapshot folder
// <cache>/models--ORG--NAME/snapshots/<commit> where <commit> is refs/<REV> (default "main") or REV
// itself. ConfigError naming every place looked in when neither exists.
std::string resolve_model_directory(const std::string& model);

}  // namespace internvl::io
