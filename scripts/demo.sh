#!/usr/bin/env bash
# The main job on the bundled tiny models (random weights, so answers are gibberish, but every
# step is the real pipeline): retrieval with InternVL-C/G, then a streamed chat turn.
#   scripts/demo.sh [RETRIEVAL_MODEL_DIR [CHAT_MODEL_DIR]]
# Setup and build output go to $BUILD_DIR/demo-build.log; only the demo itself is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build}"
# torch, imported by setup and by CMake's Torch discovery, warns that NumPy is absent; nothing
# here needs NumPy (only bench/ does, see setup.sh), so the warning is noise.
export PYTHONWARNINGS="${PYTHONWARNINGS:-ignore:Failed to initialize NumPy:UserWarning}"

mkdir -p "$BUILD_DIR"
LOG="$(cd "$BUILD_DIR" && pwd)/demo-build.log"
echo "building internvl-retrieve and internvl-chat (output in $LOG) ..."
if ! { bash scripts/setup.sh && bash scripts/build.sh --target internvl-retrieve internvl-chat; } >"$LOG" 2>&1; then
  tail -n 30 "$LOG"
  echo "demo: the build failed; the whole output is in $LOG" >&2
  exit 1
fi
BIN="$(cd "$BUILD_DIR" && pwd)"

FIXTURES="$(cd "${INTERNVL_FIXTURES_DIR:-tests/data/fixtures}" && pwd)"
RETRIEVAL_MODEL="$(cd "${1:-$FIXTURES/internvl-14b-tiny}" && pwd)"
CHAT_MODEL="$(cd "${2:-$FIXTURES/internvl-chat-internlm2-tiny}" && pwd)"
IMAGE_DIR="$FIXTURES/images"
IMAGES=(image1.jpg image2.jpg image5.jpg)

cat <<EOF

NOTE: the fixture checkpoints are tiny and have RANDOM weights. The scores below do not match
the texts, and the chat answer is gibberish, by design: what is real is every step of the
pipeline (decoding, tiling, the vision tower, tokenizer, template, sampling), which the tests
check against the official Python implementation. Use a downloaded checkpoint for real answers.

retrieval model  $RETRIEVAL_MODEL
chat model       $CHAT_MODEL
images (in $IMAGE_DIR): ${IMAGES[*]}

== internvl-retrieve: image-text similarity (InternVL-G)
EOF
# From the images' folder, so the table shows each file's whole name.
(cd "$IMAGE_DIR" && "$BIN"/examples/retrieve/internvl-retrieve embed --model "$RETRIEVAL_MODEL" --mode g --quiet \
  --images "${IMAGES[@]}" --texts "a photo of a cat" "a red bus" --top-k 2)

echo
echo "== internvl-chat: one question about $IMAGE_DIR/${IMAGES[2]} (streamed; random weights: gibberish)"
"$BIN"/examples/chat/internvl-chat --model "$CHAT_MODEL" --image "$IMAGE_DIR/${IMAGES[2]}" \
  --prompt "Please describe the image shortly." --max-new-tokens 24
