#!/usr/bin/env bash
# InternViT forward: internvl-cpp vs transformers' InternVLVisionModel, same shapes, same machine,
# same run. Prints both JSON lines and the speed ratio per configuration.
#   bench/run_vit_bench.sh            300M-448 batch 1 and 4 (fp32), 6B-224 batch 1 (bf16)
#   CONFIGS="300m:1:fp32" bench/run_vit_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build}"
INTERNVL_SETUP_BENCH=1 bash scripts/setup.sh >/dev/null
bash scripts/build.sh --target intern_vit_bench >/dev/null
PY=.venv/bin/python
THREADS="${THREADS:-$(nproc)}"
CONFIGS="${CONFIGS:-300m:1:fp32 300m:4:fp32 6b:1:bf16}"
for cfg in $CONFIGS; do
  IFS=: read -r shape batch dtype <<<"$cfg"
  iters=3; [ "$shape" = 6b ] && iters=1
  ours=$("$BUILD_DIR"/bench/intern_vit_bench --shape "$shape" --batch "$batch" --dtype "$dtype" --iters $iters --threads "$THREADS")
  peer=$($PY bench/intern_vit_peer.py --shape "$shape" --batch "$batch" --dtype "$dtype" --iters $iters --threads "$THREADS" 2>/dev/null)
  echo "$ours"
  echo "$peer"
  $PY - "$ours" "$peer" <<'PY'
import json, sys
o, p = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"ratio {o['shape']} batch {o['batch']} {o['dtype']}: internvl-cpp {o['median_s']:.3f} s vs "
      f"{p['impl']} {p['median_s']:.3f} s -> {p['median_s'] / o['median_s']:.2f}x")
PY
done
