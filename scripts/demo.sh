#!/usr/bin/env bash
# The main job on a bundled tiny model: decode and preprocess images exactly as the official
# pipeline, run InternViT, print what each image became.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build}"
bash scripts/setup.sh
bash scripts/build.sh --target internvl-vision
FIXTURES="${INTERNVL_FIXTURES_DIR:-tests/data/fixtures}"
MODEL="${1:-$FIXTURES/internvl-chat-internlm2-tiny}"
shift $(( $# > 0 ? 1 : 0 )) || true
if [ $# -eq 0 ]; then
  set -- "$FIXTURES"/images/image1.jpg "$FIXTURES"/images/image5.jpg "$FIXTURES"/images/synthetic_palette_96x64.gif
fi
"$BUILD_DIR"/examples/vision/internvl-vision --model "$MODEL" "$@"
