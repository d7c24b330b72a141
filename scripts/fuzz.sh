#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) into build-fuzz/ and runs each for
# SECONDS (default 600) from a working copy of its committed seed corpus.
#   scripts/fuzz.sh [SECONDS] [TARGET...]     targets: safetensors config image tokenizer tokenizer_bpe index
#                                             server_request
# Findings land in build-fuzz/artifacts/<target>/ (crash-*, leak-*, timeout-*); the last lines of
# each run (executions, coverage) are printed and kept in build-fuzz/logs/<target>.log. A finding
# becomes a regression test by copying it to tests/data/fuzz_regressions/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${1:-600}"
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(safetensors config image tokenizer tokenizer_bpe index server_request)
BUILD_DIR="${BUILD_DIR:-build-fuzz}"
JOBS="${JOBS:-$(nproc)}"
[ -x .venv/bin/python ] || [ -n "${INTERNVL_VENV:-}" ] || bash scripts/setup.sh
# libFuzzer comes with clang's runtime libraries (not in setup.sh: CI does not fuzz).
if ! command -v clang++ >/dev/null 2>&1 || ! dpkg-query -W -f='${Status}' libclang-rt-dev 2>/dev/null | grep -q "ok installed"; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get install -y -q --no-install-recommends clang libclang-rt-dev
fi
launcher=()
command -v ccache >/dev/null 2>&1 && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  CXX="${CXX:-clang++}" CC="${CC:-clang}" cmake -S . -B "$BUILD_DIR" "${generator[@]}" "${launcher[@]}" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
    -DINTERNVL_BUILD_FUZZERS=ON -DINTERNVL_BUILD_TESTS=OFF -DINTERNVL_BUILD_EXAMPLES=OFF \
    -DINTERNVL_BUILD_BENCH=OFF -DINTERNVL_WITH_CUDA=OFF -DINTERNVL_WITH_FAISS=OFF
fi
cmake --build "$BUILD_DIR" -j "$JOBS" --target $(printf 'fuzz_%s ' "${TARGETS[@]}")

# LibTorch keeps process-lifetime allocations; libFuzzer's own per-input leak check stays on.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
mkdir -p "$BUILD_DIR/logs"
status=0
for target in "${TARGETS[@]}"; do
  work="$BUILD_DIR/corpus/$target"
  artifacts="$BUILD_DIR/artifacts/$target"
  mkdir -p "$work" "$artifacts"
  cp -n tests/fuzz/corpus/"$target"/* "$work"/ 2>/dev/null || true
  max_len=8192
  [ "$target" = image ] && max_len=65536
  dict=()
  [ -f "tests/fuzz/$target.dict" ] && dict=(-dict="tests/fuzz/$target.dict")
  echo "== fuzz_$target for ${SECONDS_PER_TARGET}s"
  if ! "$BUILD_DIR/tests/fuzz/fuzz_$target" "$work" -max_total_time="$SECONDS_PER_TARGET" -timeout=20 -rss_limit_mb=4096 \
      -max_len="$max_len" "${dict[@]}" -print_final_stats=1 -artifact_prefix="$artifacts/" >"$BUILD_DIR/logs/$target.log" 2>&1; then
    status=1
    echo "   FINDING: see $BUILD_DIR/logs/$target.log and $artifacts/"
  fi
  grep -E "^#[0-9]+[[:space:]]+(DONE|INITED)|stat::number_of_executed_units|stat::peak_rss_mb|Done [0-9]+ runs" \
    "$BUILD_DIR/logs/$target.log" | tail -5 || true
done
exit $status
