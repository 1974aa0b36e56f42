#!/usr/bin/env bash
# Packs what bench/gpu-check.sh needs into one archive for a machine with a
# GPU where pinferc's build dependencies (LLVM 19, Z3, cpp-httplib) are not
# installed: an installed pinferc, pinfer-genmodel, the runtime library and
# headers, the shared libraries pinferc loads (found through its RPATH, so
# that nothing else on that machine sees them) and the GPU test programs.
# That machine needs glibc >= this one's, a C++17 compiler, the CUDA
# driver and NVRTC 13, and python3.
#
#   bash bench/pack-gpu-kit.sh OUT.tar.xz      (after scripts/build.sh)
#
# There:  tar xJf OUT.tar.xz && PINFER_KIT=$PWD/gpu-kit bash bench/gpu-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: bench/pack-gpu-kit.sh OUT.tar.xz}
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
BUILD_DIR=${BUILD_DIR:-build}
command -v patchelf >/dev/null ||
  { echo "pack-gpu-kit: patchelf not found (apt-get install patchelf)" >&2; exit 1; }

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT INT TERM
kit="$stage/gpu-kit"
cmake --install "$BUILD_DIR" --prefix "$kit" >/dev/null
rm -f "$kit"/lib/*.a "$kit/bin/pinfer-opt"
mkdir -p "$kit/lib/deps" "$kit/tests"

# Every shared library pinferc loads except glibc's and the C++ runtime
# (the other machine's own are newer) and NVRTC (its own, matching its
# driver).
ldd "$kit/bin/pinferc" | awk '/=> \//{print $1, $3}' |
  while read -r name path; do
    case "$name" in
      libc.so*|libm.so*|libpthread*|librt*|libdl*|libstdc++*|libgcc_s*|libnvrtc*) ;;
      *) cp -L "$path" "$kit/lib/deps/$name" ;;
    esac
  done
for f in "$kit"/lib/deps/*; do patchelf --remove-rpath "$f"; done
# Generated executables are linked with the HTTP library and load it at
# run time: it and what it needs, in a folder of their own that the
# library's RUNPATH names, for LIBRARY_PATH and LD_LIBRARY_PATH there.
mkdir -p "$kit/lib/http"
httplib=$(readlink -f /usr/lib/x86_64-linux-gnu/libcpp-httplib.so)
cp "$httplib" "$kit/lib/http/"
ln -s "$(basename "$httplib")" "$kit/lib/http/libcpp-httplib.so"
soname=$(patchelf --print-soname "$httplib")
[ "$soname" = "$(basename "$httplib")" ] ||
  ln -s "$(basename "$httplib")" "$kit/lib/http/$soname"
ldd "$httplib" | awk '/=> \//{print $1, $3}' |
  while read -r name path; do
    case "$name" in
      libc.so*|libm.so*|libstdc++*|libgcc_s*) ;;
      *) cp -L "$path" "$kit/lib/http/$name" ;;
    esac
  done
patchelf --set-rpath '$ORIGIN' "$kit/lib/http/$(basename "$httplib")"
# DT_RPATH (not RUNPATH) so that it also applies to the libraries' own
# dependencies; CUDA's usual places for NVRTC after the kit's.
patchelf --force-rpath \
  --set-rpath '$ORIGIN/../lib/deps:/usr/local/cuda/lib64:/usr/local/cuda/lib' \
  "$kit/bin/pinferc"

for t in cuda_gpu_test cuda_gpu_attention_test cuda_gpu_tiles_test \
  cuda_gpu_image_test; do
  cp "$BUILD_DIR/test/unit/$t" "$kit/tests/"
  patchelf --force-rpath --set-rpath '/usr/local/cuda/lib64:/usr/local/cuda/lib' \
    "$kit/tests/$t"
done
mkdir -p "$kit/bench"
cp bench/gpu-check.sh bench/gpu_check.py "$kit/bench/"

tar -C "$stage" -cf - gpu-kit | xz -T0 -6 >"$out.tmp"
mv "$out.tmp" "$out"
echo "pack-gpu-kit: $out ($(du -h "$out" | cut -f1))"
