#!/usr/bin/env bash
# Installs everything pinferc needs to build and test on Debian 12 (bookworm).
# Idempotent: when every package is already installed it returns at once.
set -euo pipefail

LLVM=19
PACKAGES=(
  cmake ninja-build ccache g++ python3
  llvm-$LLVM-dev libmlir-$LLVM-dev mlir-$LLVM-tools llvm-$LLVM-tools
  clang-$LLVM lld-$LLVM libclang-rt-$LLVM-dev libzstd-dev
  libz3-dev libcli11-dev googletest libgtest-dev
  libcpp-httplib-dev nlohmann-json3-dev curl
  # the plan picture test renders its SVG
  librsvg2-bin
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
  "${missing[@]}" >/dev/null
echo "install-deps: done"

# The CUDA toolkit (NVRTC) is optional: without it only --target cpu builds.
if [ ! -e /usr/local/cuda/lib64/libnvrtc.so ] && ! ldconfig -p | grep -q libnvrtc; then
  echo "install-deps: note: no CUDA toolkit found; GPU targets will be disabled"
fi
