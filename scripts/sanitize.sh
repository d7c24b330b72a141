#!/usr/bin/env bash
# Builds the whole test suite with AddressSanitizer + UndefinedBehaviorSanitizer into build-asan/
# (BUILD_DIR overrides) and runs ctest there. Extra arguments go to ctest (e.g. -R Safetensors).
# LibTorch itself is not instrumented; only our code and the tests are. UB aborts the test
# (-fno-sanitize-recover). Leak checking is off: LibTorch and OpenMP keep process-lifetime
# allocations that LeakSanitizer would report as leaks.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build-asan}"
JOBS="${JOBS:-$(nproc)}"
[ -x .venv/bin/python ] || [ -n "${INTERNVL_VENV:-}" ] || bash scripts/setup.sh
flags="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
launcher=()
command -v ccache >/dev/null 2>&1 && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  # CUDA off: device code is not what the sanitizers check, and nvcc rejects -fsanitize.
  cmake -S . -B "$BUILD_DIR" "${generator[@]}" "${launcher[@]}" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
    -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
    -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" \
    -DINTERNVL_WITH_CUDA=OFF -DINTERNVL_BUILD_BENCH=OFF ${CMAKE_ARGS:-}
fi
[ "${SKIP_BUILD:-0}" = 1 ] || cmake --build "$BUILD_DIR" -j "$JOBS"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
cd "$BUILD_DIR"
# Instrumented code runs slower: longer per-test timeout than the default build's.
# Consumer.* installs this build and links an uninstrumented project against it, which cannot
# resolve the sanitizer runtime (__asan_*/__ubsan_*): a property of the mix, not of the code.
ctest --output-on-failure -j "${CTEST_JOBS:-2}" --timeout "${CTEST_TIMEOUT:-3000}" -E '^Consumer\.' "$@"
