#!/usr/bin/env bash
# Decoder prefill/decode on CPU: internvl-cpp (InternLM2 shapes) vs transformers generate (LLaMA with
# the same shapes), same machine, same run, same threads. Prints both JSON lines and the ratios.
#   bench/run_decoder_bench.sh                 InternVL2-2B's decoder (InternLM2-1.8B shapes), fp32
#   SHAPE=internlm2-7b DTYPE=bf16 bench/run_decoder_bench.sh
#   SHAPE=qwen2.5-0.5b bench/run_decoder_bench.sh  InternVL2.5-1B / InternVL3-1B's decoder (Qwen2ForCausalLM)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build}"
INTERNVL_SETUP_BENCH=1 bash scripts/setup.sh >/dev/null
bash scripts/build.sh --target decoder_bench >/dev/null
PY=.venv/bin/python
args=(--shape "${SHAPE:-internlm2-1.8b}" --prompt "${PROMPT:-256}" --new "${NEW:-32}" --dtype "${DTYPE:-fp32}" --threads "${THREADS:-$(nproc)}")
ours=$("$BUILD_DIR"/bench/decoder_bench "${args[@]}")
peer=$($PY bench/decoder_peer.py "${args[@]}" 2>/dev/null)
echo "$ours"
echo "$peer"
$PY - "$ours" "$peer" <<'PY'
import json, sys
o, p = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"prefill {o['prompt']} tokens: internvl-cpp {o['prefill_tok_s']} tok/s vs {p['impl']} {p['prefill_tok_s']} tok/s"
      f" -> {o['prefill_tok_s'] / p['prefill_tok_s']:.2f}x")
print(f"decode: internvl-cpp {o['decode_tok_s']} tok/s vs {p['impl']} {p['decode_tok_s']} tok/s"
      f" -> {o['decode_tok_s'] / p['decode_tok_s']:.2f}x")
PY
