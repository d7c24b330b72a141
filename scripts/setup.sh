#!/usr/bin/env bash
# Installs everything the build needs on a fresh Debian 12 machine. Idempotent.
#   apt: compilers' companions (SentencePiece, cpp-httplib, libedit, PCRE2, utf8proc, OpenCV, Eigen, nlohmann-json, GoogleTest, Benchmark, ninja, ccache, giflib, FAISS, FFmpeg's libav*, Doxygen)
#   PyPI: torch (LibTorch inside the wheel) into a project-local venv, pinned; the openai and
#   selenium clients for the server tests.
#   apt, test-only: curl, chromium + chromium-driver (the server's browser test).
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_VERSION="${INTERNVL_TORCH_VERSION:-2.11.0}"
VENV="${INTERNVL_VENV:-$PWD/.venv}"

APT_PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config
  libsentencepiece-dev libpcre2-dev libutf8proc-dev
  libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev
  libgif-dev libeigen3-dev nlohmann-json3-dev libedit-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libfaiss-dev
  libavformat-dev libavcodec-dev libswscale-dev libavutil-dev
  libcpp-httplib-dev
  doxygen
  python3-venv
  curl chromium chromium-driver
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import torch,sys; sys.exit(0 if torch.__version__.split('+')[0]=='$TORCH_VERSION' else 1)" 2>/dev/null; then
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q "torch==$TORCH_VERSION"
fi
# Test-only clients of internvl-server (never used at run time): the official OpenAI client and
# Selenium for the browser test (driving Debian's chromium through chromium-driver).
if ! "$VENV/bin/python" -c "import openai, selenium" 2>/dev/null; then
  "$VENV/bin/python" -m pip install -q "openai==${INTERNVL_OPENAI_VERSION:-3.57.0}" "selenium==${INTERNVL_SELENIUM_VERSION:-4.50.0}"
fi
# Python-side peers for the benchmarks only (bench/); the build does not need them.
if [ "${INTERNVL_SETUP_BENCH:-0}" = "1" ]; then
  "$VENV/bin/python" -m pip install -q transformers safetensors numpy pillow
fi
echo "setup: torch $("$VENV/bin/python" -c 'import torch;print(torch.__version__)') in $VENV"
