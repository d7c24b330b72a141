#!/usr/bin/env bash
# Installs a build into a fresh prefix, then builds examples/consumer against the installed package
# twice: with find_package(InternVL CONFIG) and with pkg-config. Prints the binaries' directories.
#   scripts/check_install.sh [BUILD_DIR] [WORK_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD="$(realpath "${1:-build}")"
WORK="$(realpath -m "${2:-$BUILD/install-check}")"
[ -f "$BUILD/CMakeCache.txt" ] || { echo "error: $BUILD is not a configured build (run scripts/build.sh)" >&2; exit 2; }
if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH="/usr/local/cuda/bin:$PATH"  # the CUDA wheel's CMake files look for the toolkit
fi
rm -rf "$WORK"
mkdir -p "$WORK"
cmake --install "$BUILD" --prefix "$WORK/prefix" >"$WORK/install.log"

launcher=()
command -v ccache >/dev/null 2>&1 && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
# Only the prefix is given: the package finds LibTorch and the rest itself.
cmake -S examples/consumer -B "$WORK/cmake" "${generator[@]}" "${launcher[@]}" \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$WORK/prefix" >"$WORK/cmake-configure.log"
cmake --build "$WORK/cmake" >"$WORK/cmake-build.log"

mkdir -p "$WORK/pkg-config"
export PKG_CONFIG_PATH="$WORK/prefix/lib/pkgconfig"
read -r -a pc_flags <<<"$(pkg-config --cflags --libs internvl)"
for tool in embeddings chat; do
  ${CXX:-c++} -O2 "examples/consumer/$tool.cpp" -o "$WORK/pkg-config/$tool" "${pc_flags[@]}"
done
echo "$WORK/cmake"
echo "$WORK/pkg-config"
