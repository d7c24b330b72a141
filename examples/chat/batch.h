// internvl-chat --batch: many questions answered as one batched run (JSON lines in and out).
#pragma once

#include <string>

#include "cli.h"
#include "internvl/internvl.h"

namespace chat_tool {

// Reads options.batch_input (one JSON object per line: id, question, images, max_new_tokens and
// the sampling fields named as the flags), answers every request through the model's batch
// engine and writes one line per input line, in input order, to options.batch_output (atomically;
// "-" or empty: stdout). A bad line gets {"id", "error"} and the others still run. Returns the
// exit status: 0 when every line was answered, 1 when some line has an error.
int run_batch(const internvl::Model& model, const Options& options);

}  // namespace chat_tool
