#!/usr/bin/env bash
# Peak RSS of a text-only search with LoadOptions::parts = text (now) vs all (before), each in its
# own process, on a 6B-shaped checkpoint written once (sparse, ~16 GB apparent) to $CHECKPOINT.
#   bash bench/run_load_parts_bench.sh [BUILD_DIR]      (CHECKPOINT=/tmp/internvl-6b-shaped)
set -euo pipefail
BUILD_DIR="${1:-build}"
BENCH="$BUILD_DIR/bench/load_parts_bench"
CHECKPOINT="${CHECKPOINT:-/tmp/internvl-6b-shaped}"
[ -f "$CHECKPOINT/model.safetensors" ] || "$BENCH" --make "$CHECKPOINT" --qllama-layers "${QLLAMA_LAYERS:-8}"
text=$("$BENCH" --run "$CHECKPOINT" --parts text)
all=$("$BENCH" --run "$CHECKPOINT" --parts all)
echo "$text"
echo "$all"
python3 - "$text" "$all" <<'PY'
import json, sys
text, full = (json.loads(a) for a in sys.argv[1:3])
print(f"peak RSS: text-only {text['peak_rss_mib']:.0f} MiB vs all {full['peak_rss_mib']:.0f} MiB "
      f"({full['peak_rss_mib'] / text['peak_rss_mib']:.2f}x less); load {text['load_s']:.1f} s vs {full['load_s']:.1f} s")
PY
