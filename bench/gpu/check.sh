#!/usr/bin/env bash
# The prepared GPU check (one call on the lent machine, <= 8 minutes). Build HERE first:
#   scripts/build_gpu_check.sh            -> build-gpu/ with the kernel test and bench for sm_90
# then run on the device with carry ["build-gpu"]:
#   bash bench/gpu/check.sh
# It runs the kernel tests (kernels vs ATen on fresh random inputs) and prints the timing table.
set -uo pipefail
cd "$(dirname "$0")/../.."
BUILD="${BUILD_DIR:-build-gpu}"
OUT_DIR="${OUT:-/tmp/internvl-gpu-check}"
mkdir -p "$OUT_DIR"
SP=$(ls -d /opt/torch/.venv/lib/python3*/site-packages 2>/dev/null | head -1)
export LD_LIBRARY_PATH="$SP/torch/lib:$SP/nvidia/cu13/lib:${LD_LIBRARY_PATH:-}"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv | tee "$OUT_DIR/gpu.txt"
for bin in "$BUILD/tests/cuda_kernels_test" "$BUILD/bench/attention_bench"; do
  missing=$(ldd "$bin" | grep 'not found')
  if [ -n "$missing" ]; then echo "$bin: missing libraries:"; echo "$missing"; exit 1; fi
done
echo "== kernel tests"
INTERNVL_CUDA_KERNELS=1 timeout 240 "$BUILD/tests/cuda_kernels_test" 2>&1 | tee "$OUT_DIR/kernel_tests.txt" | tail -25
echo "== attention timing (bf16, median of 20, device events)"
timeout 240 "$BUILD/bench/attention_bench" --iters 20 2>&1 | tee "$OUT_DIR/attention_bench.txt"
