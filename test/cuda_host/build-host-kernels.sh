#!/usr/bin/env bash
# Test only: compiles emitted CUDA C++ (pinferc --emit=cuda) as host C++
# into a shared object that the libcuda stand-in loads (driver_standin.cpp).
#
#   build-host-kernels.sh KERNELS.cu OUT.so
#
# Uses $CXX (the sanitised build puts a compiler that adds ASan and UBSan
# first), so the kernels run under the same checks as the tests.
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: build-host-kernels.sh KERNELS.cu OUT.so" >&2
  exit 2
fi
src=$(realpath "$1")
out=$2
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
# Every kernel the source defines, by the emitter's declaration line.
names=$(grep -o '__global__ void __launch_bounds__([0-9, ]*) [A-Za-z_][A-Za-z0-9_]*' "$src" \
  | awk '{print $NF}')
if [ -z "$names" ]; then
  echo "build-host-kernels: no kernel in $1" >&2
  exit 1
fi
cp "$src" "$tmp/kernels.cu"
{
  echo '#include "cuda_host_shim.h"'
  echo '#include "kernels.cu"'
  echo 'PF_SHIM_KERNELS('
  for n in $names; do echo "  PF_SHIM_ENTRY($n)"; done
  echo ')'
} >"$tmp/kernels.cpp"
"${CXX:-c++}" -std=c++17 -O1 -g1 -fPIC -shared -fno-strict-aliasing \
  -Wno-unused-function -I "$here" -I "$tmp" "$tmp/kernels.cpp" -o "$tmp/out.so"
mv "$tmp/out.so" "$out"
