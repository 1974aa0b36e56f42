#!/usr/bin/env bash
# Installs dependencies if missing, builds everything and runs every test
# (GoogleTest unit tests and lit tests) through ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j"${JOBS:-$(nproc)}"
