#!/usr/bin/env bash
# Installs dependencies if missing, builds everything and runs every test
# (GoogleTest unit tests, lit tests, short fuzz runs) through ctest.
#
#   bash scripts/test.sh              the suite, in ${BUILD_DIR:-build}
#   bash scripts/test.sh --sanitize   the suite built with ASan+UBSan (UBSan
#                                     only where MLIR is used) in
#                                     ${BUILD_DIR:-build-sanitize}; see
#                                     cmake/PInferSanitize.cmake
#
# Further arguments go to ctest (e.g. -L unit, -R Plan).
set -euo pipefail
cd "$(dirname "$0")/.."
sanitize=0
if [ "${1:-}" = "--sanitize" ]; then
  sanitize=1
  shift
fi
bash scripts/install-deps.sh
if [ "$sanitize" = 0 ]; then
  # The real model and llama.cpp for the oracle tests (cached; the first
  # run builds llama.cpp, about 10 minutes on 2 cores). Without network they
  # are skipped, each with one line.
  bash scripts/install-models.sh >/dev/null \
    || echo "test: scripts/install-models.sh failed; the oracle tests will skip"
fi
if [ "$sanitize" = 1 ]; then
  export BUILD_DIR=${BUILD_DIR:-build-sanitize}
  if [ ! -f "$BUILD_DIR/build.ninja" ]; then
    mkdir -p "$BUILD_DIR"
    cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DPINFER_SANITIZE=ON >"$BUILD_DIR.configure.log" 2>&1 \
      || { cat "$BUILD_DIR.configure.log"; exit 1; }
  fi
fi
bash scripts/build.sh
# The sanitised run leaves out the oracle (label oracle): it compares numbers
# with llama.cpp, which the normal run does, and is slow under ASan. And the
# ptxas resource check: its time is the toolkit's ptxas on the same emitted
# source as in the normal run (two minutes), none of it sanitised code.
extra=()
if [ "$sanitize" = 1 ]; then extra=(-LE oracle -E '^PtxasResources[.]'); fi
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j"${JOBS:-$(nproc)}" \
  "${extra[@]}" "$@"
