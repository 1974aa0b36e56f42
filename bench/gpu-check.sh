#!/usr/bin/env bash
# The check to run where a GPU is available, in under 5 minutes on one GPU
# after the build: the GPU kernel tests (every kernel against its CPU twin
# by normalised error, skipped without a GPU), then bench/gpu_check.py
# (executables against the dense reference and the decode speed table).
#
#   bash bench/gpu-check.sh [gpu_check.py options]   e.g. --models 1b:q4_0
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
if [ ! -x "$BUILD_DIR/tools/pinferc/pinferc" ]; then
  bash scripts/build.sh
fi
nvidia-smi -L 2>/dev/null || echo "gpu-check: nvidia-smi lists no GPU"
ctest --test-dir "$BUILD_DIR" -R 'CudaKernels|CudaSplitDown|CudaAttention|CudaDriverProbe' \
  -E 'standin' --output-on-failure
exec python3 bench/gpu_check.py --build-dir "$BUILD_DIR" "$@"
