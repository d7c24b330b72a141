#!/usr/bin/env bash
# The main job on the bundled tiny models (random weights, so answers are gibberish, but every
# step is the real pipeline): retrieval with InternVL-C/G, then a streamed chat turn.
#   scripts/demo.sh [RETRIEVAL_MODEL_DIR [CHAT_MODEL_DIR]]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build}"
bash scripts/setup.sh
bash scripts/build.sh --target internvl-retrieve internvl-chat
FIXTURES="${INTERNVL_FIXTURES_DIR:-tests/data/fixtures}"
RETRIEVAL_MODEL="${1:-$FIXTURES/internvl-14b-tiny}"
CHAT_MODEL="${2:-$FIXTURES/internvl-chat-internlm2-tiny}"
IMAGES=("$FIXTURES"/images/image1.jpg "$FIXTURES"/images/image2.jpg "$FIXTURES"/images/image5.jpg)

echo "== internvl-retrieve: image-text similarity (InternVL-G)"
"$BUILD_DIR"/examples/retrieve/internvl-retrieve embed --model "$RETRIEVAL_MODEL" --mode g --quiet \
  --images "${IMAGES[@]}" --texts "a photo of a cat" "a red bus" --top-k 2

echo "== internvl-chat: one question about an image (streamed)"
"$BUILD_DIR"/examples/chat/internvl-chat --model "$CHAT_MODEL" --image "${IMAGES[2]}" \
  --prompt "Please describe the image shortly." --max-new-tokens 24
