#!/usr/bin/env bash
# The check to run where a GPU is available, in under 5 minutes on one GPU
# after the build: the GPU kernel tests (every kernel against its CPU twin
# by normalised error, skipped without a GPU), then bench/gpu_check.py
# (executables against the dense reference and the decode speed table).
#
#   bash bench/gpu-check.sh [gpu_check.py options]   e.g. --models 1b:q4_0
#
# With PINFER_KIT=DIR (a kit from bench/pack-gpu-kit.sh, for a machine
# without the build dependencies) the kit's tools and test programs are used
# and the tests run beside the models' preparation; the timed runs wait for
# them.
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader \
  2>/dev/null || echo "gpu-check: nvidia-smi lists no GPU"
if [ -n "${PINFER_KIT:-}" ]; then
  log=${GPU_TEST_LOG:-/tmp/gpu-tests.log}
  (
    rc=0
    for t in "$PINFER_KIT"/tests/*; do
      "$t" --gtest_brief=1 || rc=1
    done
    echo "gpu-check: GPU tests $([ $rc = 0 ] && echo passed || echo FAILED)"
    exit $rc
  ) >"$log" 2>&1 &
  tests=$!
  set +e
  python3 bench/gpu_check.py --kit "$PINFER_KIT" --wait-pid "$tests" "$@"
  rc=$?
  wait "$tests"
  trc=$?
  tail -n 40 "$log"
  [ $rc = 0 ] && [ $trc = 0 ]
  exit
fi
BUILD_DIR=${BUILD_DIR:-build}
if [ ! -x "$BUILD_DIR/tools/pinferc/pinferc" ]; then
  bash scripts/build.sh
fi
ctest --test-dir "$BUILD_DIR" -R 'CudaKernels|CudaSplitDown|CudaAttention|CudaTiles|CudaDriverProbe' \
  -E 'standin' --output-on-failure
exec python3 bench/gpu_check.py --build-dir "$BUILD_DIR" "$@"
