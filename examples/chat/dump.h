// internvl-chat: --dump, the token ids and first-step logits of an answer as safetensors.
#pragma once

#include <string>

#include "internvl/internvl.h"

namespace chat_tool {

// Writes `input_ids` [T] I64, `output_ids` [N] I64 and `first_logits` [V] F32 of `result` to
// `path` in the safetensors format, atomically: a temporary file in the same directory is
// written, fsynced and renamed over `path`. Throws internvl::Error naming the file on failure.
void write_dump(const std::string& path, const internvl::ChatResult& result);

}  // namespace chat_tool
