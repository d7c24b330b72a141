#!/usr/bin/env bash
# BPE encode throughput, one thread: internvl-cpp's Qwen2Tokenizer backend (vocab.json + merges.txt)
# vs the Rust `tokenizers` package (tokenizer.json of the same Qwen3 tokenizer), same text, same
# run, same machine; plus the load time of the 151k-token vocabulary. Prints both JSON lines, the
# ratio, and whether the ids agree.
#   bench/run_bpe_bench.sh                 4 MB of repo sources + multilingual fixture strings
#   MB=8 DOC_BYTES=65536 bench/run_bpe_bench.sh
# Needs `tokenizers` in the venv (bench only): $VENV/bin/pip install tokenizers
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build}"
PY="${INTERNVL_VENV:-.venv}/bin/python"
TOKENIZER="${TOKENIZER:-tests/data/fixtures/qwen2-tokenizer}"
bash scripts/build.sh --target bpe_tokenizer_bench >/dev/null
text="$(mktemp /tmp/bpe_bench_text.XXXXXX)"
trap 'rm -f "$text"' EXIT
python3 bench/make_bpe_text.py --mb "${MB:-4}" --out "$text"
args=(--tokenizer "$TOKENIZER" --text "$text" --doc-bytes "${DOC_BYTES:-4096}" --repeats "${REPEATS:-3}")
ours=$(taskset -c 0 "$BUILD_DIR"/bench/bpe_tokenizer_bench "${args[@]}")
peer=$(RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false taskset -c 0 "$PY" bench/bpe_tokenizer_peer.py "${args[@]}")
echo "$ours"
echo "$peer"
python3 - "$ours" "$peer" <<'PY'
import json, sys
o, p = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"encode {o['bytes'] / 1e6:.1f} MB in {o['docs']} documents: internvl-cpp {o['mb_s']} MB/s vs {p['impl']} "
      f"{p['mb_s']} MB/s -> {o['mb_s'] / p['mb_s']:.2f}x (first pass {p['first_s'] / o['first_s']:.2f}x)")
print(f"load: internvl-cpp {o['load_s']} s (vocab.json + merges.txt) vs {p['impl']} {p['load_s']} s (tokenizer.json)")
print("ids agree" if (o['tokens'], o['ids_fnv']) == (p['tokens'], p['ids_fnv']) else
      f"ids DIFFER: {o['tokens']} tokens {o['ids_fnv']} vs {p['tokens']} {p['ids_fnv']}")
PY
