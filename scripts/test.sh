#!/usr/bin/env bash
# Builds (scripts/build.sh) and runs the whole test suite with ctest.
# INTERNVL_FIXTURES_DIR may point the reference tests at another fixture set.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build}"
bash scripts/setup.sh
bash scripts/build.sh
cd "$BUILD_DIR"
ctest --output-on-failure -j "${CTEST_JOBS:-2}" "$@"
