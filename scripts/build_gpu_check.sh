#!/usr/bin/env bash
# Builds, on this (GPU-less) machine, what bench/gpu/check.sh runs on a lent H100/H200, for sm_90
# only, into build-gpu/ (carried with the device call): the CUDA kernel test, the CUDA-graph decode
# test, the layer A/B test, the attention bench and the InternViT / decoder benches. They need only
# LibTorch's own libraries (the device machine's /opt/torch/.venv has the same torch 2.11 + CUDA 13):
# OpenCV and SentencePiece are linked as-needed and these binaries use neither. The binaries are
# stripped and everything else in build-gpu/ is left out of the carry by check_carry below.
#   JOBS=2 scripts/build_gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${INTERNVL_VENV:-}" ] || bash scripts/setup.sh >/dev/null
export PATH="/usr/local/cuda/bin:$PATH"
export TORCH_CUDA_ARCH_LIST=9.0
launcher=()
if command -v ccache >/dev/null 2>&1; then
  export CCACHE_SLOPPINESS="${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}"
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
fi
# A separate tree: the carried folder holds only the binaries (build-gpu-tree keeps the objects).
TREE=build-gpu-tree
if [ ! -f "$TREE/CMakeCache.txt" ]; then
  cmake -S . -B "$TREE" -G Ninja -DCMAKE_BUILD_TYPE=Release -DINTERNVL_WITH_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
    -DINTERNVL_BUILD_EXAMPLES=OFF "${launcher[@]}"
fi
TARGETS=(cuda_kernels_test decode_loop_test cuda_layers_test attention_bench intern_vit_bench decoder_bench)
cmake --build "$TREE" -j "${JOBS:-$(nproc)}" --target "${TARGETS[@]}"
rm -rf build-gpu
mkdir -p build-gpu/tests build-gpu/bench
for t in cuda_kernels_test decode_loop_test cuda_layers_test; do strip -o "build-gpu/tests/$t" "$TREE/tests/$t"; done
for t in attention_bench intern_vit_bench decoder_bench; do strip -o "build-gpu/bench/$t" "$TREE/bench/$t"; done
du -sh build-gpu
# What the binaries need beyond LibTorch/CUDA (should print nothing but the C/C++ runtime):
for f in build-gpu/*/*; do
  readelf -d "$f" | grep NEEDED | grep -vE 'torch|c10|cudart|libstdc\+\+|libc\.so|libm\.so|libgcc_s|ld-linux' | sed "s|^|$f: |" || true
done
