#!/usr/bin/env bash
# Builds, on this (GPU-less) machine, the two binaries bench/gpu/check.sh runs on a lent H100/H200:
# the CUDA kernel test and the attention benchmark, for sm_90 only, into build-gpu/ (carried with
# the device call; they need only LibTorch's own libraries, which the device machine has).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
export PATH="/usr/local/cuda/bin:$PATH"
export TORCH_CUDA_ARCH_LIST=9.0
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DINTERNVL_WITH_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
  -DINTERNVL_BUILD_EXAMPLES=OFF ${CCACHE:+-DCMAKE_CXX_COMPILER_LAUNCHER=ccache}
cmake --build build-gpu -j "$(nproc)" --target cuda_kernels_test attention_bench
du -sh build-gpu/tests/cuda_kernels_test build-gpu/bench/attention_bench
