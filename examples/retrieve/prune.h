// internvl-retrieve: `index --prune` without PATHs.
#pragma once

#include "cli.h"

namespace retrieve {

// Drops the entries of args.index_path whose files no longer exist, adds nothing and loads no
// model (removing rows needs none). Prints the index report (text or --json); returns the exit
// status. Throws ToolError / internvl::Error.
int run_prune_only(const Args& args);

}  // namespace retrieve
