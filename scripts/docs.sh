#!/usr/bin/env bash
# Builds the API reference of the public headers with Doxygen into build/docs/html (OUT overrides);
# any Doxygen warning (an undocumented public name, a broken reference) fails the build.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v doxygen >/dev/null 2>&1 || { echo "error: doxygen not found (apt-get install doxygen)" >&2; exit 2; }
export INTERNVL_DOCS_OUT="${OUT:-build/docs}"
mkdir -p "$INTERNVL_DOCS_OUT"
doxygen docs/Doxyfile
echo "API reference: $INTERNVL_DOCS_OUT/html/index.html"
