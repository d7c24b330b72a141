#!/usr/bin/env bash
# The prepared GPU check: one call on the lent machine, at most ~8 minutes. Build HERE first:
#   scripts/build_gpu_check.sh      -> build-gpu/ (sm_90, stripped test and bench binaries, ~MBs)
# then run on the device with carry ["build-gpu"] and timeout_s 600:
#   bash bench/gpu/check.sh
# Steps (each under its own timeout, all inside a 450 s budget; every output lands in $OUT):
#   1. kernel tests (kernels vs ATen on fresh random inputs, poisoned outputs), CUDA-graph decode
#      tests, the vision layer A/B test;
#   2. the machine: device copy bandwidth and a bf16 8192^3 matmul (roofline and MFU references);
#   3. attention: our prefill/decode kernels vs torch SDPA, best backend (bench/gpu/sdpa_peer.py);
#   4. 8B InternLM2-shaped decoder, batch-1 decode tok/s (kernels + CUDA graphs; ATen eager) vs
#      transformers generate (bench/decoder_peer.py) and the HBM roofline;
#   5. InternViT-6B-224, batch 32 bf16 images/s (kernels; ATen) vs transformers
#      InternVLVisionModel with sdpa (bench/intern_vit_peer.py), MFU against the measured matmul;
#   6. bench/gpu/report.py prints the table ($OUT/table.md; also check.log, results.txt,
#      tests_summary.txt).
# Needs only the machine's own PyTorch (/opt/torch/.venv: torch 2.11 + transformers): the carried
# binaries load LibTorch from there; nothing is built on the device.
set -uo pipefail
cd "$(dirname "$0")/../.."
BUILD="${BUILD_DIR:-build-gpu}"
OUT_DIR="${OUT:-/tmp/internvl-gpu-check}"
BUDGET="${CHECK_BUDGET_S:-450}"
mkdir -p "$OUT_DIR"
W=$(mktemp -d /tmp/internvl-check.XXXXXX)  # per-step JSON; gathered into $OUT/results.txt (8 files come back at most)
LOG="$OUT_DIR/check.log"
: >"$LOG"
: >"$W/steps.txt"
PY="${CHECK_PYTHON:-/opt/torch/.venv/bin/python}"
[ -x "$PY" ] || PY=python3
SP=$("$PY" -c 'import site; print(site.getsitepackages()[0])')
export LD_LIBRARY_PATH="$SP/torch/lib:$SP/nvidia/cu13/lib:$SP/nvidia/cudnn/lib:${LD_LIBRARY_PATH:-}"
export PYTHONUNBUFFERED=1

# step NAME TIMEOUT OUTFILE CMD...: runs within the remaining budget, output to the log (and to
# OUTFILE when given), records exit status and seconds.
step() {
  local name=$1 limit=$2 outfile=$3
  shift 3
  local left=$((BUDGET - SECONDS))
  if [ "$left" -lt 10 ]; then
    echo "== $name: skipped (budget spent)" | tee -a "$LOG"
    echo "$name skipped" >>"$W/steps.txt"
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "== $name (timeout ${limit}s)" | tee -a "$LOG"
  local start=$SECONDS
  if [ -n "$outfile" ]; then
    timeout --kill-after=5 "$limit" "$@" 2>>"$LOG" | tee -a "$LOG" >"$W/$outfile"
  else
    timeout --kill-after=5 "$limit" "$@" >>"$LOG" 2>&1
  fi
  local rc=${PIPESTATUS[0]}
  echo "$name rc=$rc ${SECONDS}s-${start}s=$((SECONDS - start))s" >>"$W/steps.txt"
  tail -n 3 "$LOG"
}

{
  nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv
  "$PY" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'
} 2>&1 | tee -a "$LOG"
for bin in tests/cuda_kernels_test tests/decode_loop_test tests/cuda_layers_test bench/attention_bench \
  bench/intern_vit_bench bench/decoder_bench; do
  if [ ! -x "$BUILD/$bin" ]; then echo "missing $BUILD/$bin: run scripts/build_gpu_check.sh here first" | tee -a "$LOG"; exit 1; fi
  missing=$(ldd "$BUILD/$bin" | grep 'not found')
  if [ -n "$missing" ]; then echo "$bin: missing libraries: $missing" | tee -a "$LOG"; exit 1; fi
done

step kernel_tests 150 "" "$BUILD/tests/cuda_kernels_test"
step graph_tests 90 "" "$BUILD/tests/decode_loop_test" --gtest_filter='CudaDecodeGraph.*'
step layer_tests 60 "" "$BUILD/tests/cuda_layers_test"
grep -hE '^\[  (PASSED|FAILED|SKIPPED) ' "$LOG" >"$OUT_DIR/tests_summary.txt"
step machine 60 machine.jsonl "$PY" bench/gpu/sdpa_peer.py --machine
step attention_ours 90 attention.jsonl "$BUILD/bench/attention_bench" --iters 20
step attention_sdpa 120 sdpa.jsonl "$PY" bench/gpu/sdpa_peer.py --iters 20
DEC=(--shape internlm2-7b --dtype bf16 --prompt 256 --new 128)
step decoder_ours 90 dec_ours.jsonl "$BUILD/bench/decoder_bench" "${DEC[@]}" --device cuda --kernels 1
step decoder_peer 150 dec_peer.jsonl "$PY" bench/decoder_peer.py "${DEC[@]}" --device cuda
VIT=(--shape 6b --batch 32 --dtype bf16 --iters 5 --warmup 2)
step vit_ours 120 vit_ours.jsonl "$BUILD/bench/intern_vit_bench" "${VIT[@]}" --device cuda --kernels 1
step vit_peer 150 vit_peer.jsonl "$PY" bench/intern_vit_peer.py "${VIT[@]}" --device cuda
# A/B: the same benches on the ATen path (kernels and graphs off).
step decoder_ours_aten 60 dec_ours_aten.jsonl "$BUILD/bench/decoder_bench" "${DEC[@]}" --device cuda --kernels 0
step vit_ours_aten 90 vit_ours_aten.jsonl "$BUILD/bench/intern_vit_bench" "${VIT[@]}" --device cuda --kernels 0

"$PY" bench/gpu/report.py "$W" | tee "$OUT_DIR/table.md"
for f in "$W"/*; do echo "# $(basename "$f")"; cat "$f"; done >"$OUT_DIR/results.txt"
cat "$OUT_DIR/tests_summary.txt"
echo "total ${SECONDS}s"
