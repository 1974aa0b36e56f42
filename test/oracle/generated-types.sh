#!/usr/bin/env bash
# Every computable block format against llama.cpp: a tiny generated LLaMA
# model in each type (written by pinfer-genmodel's quantisers, read by
# llama.cpp's ggml), scored on the same text by both; perplexity and
# next-token choices must agree (llama_cpp_oracle.py). A wrong block layout
# on either side makes the two read different weights and fails at once.
# Skips (77) without scripts/install-models.sh.
set -euo pipefail
pinferc="$1" genmodel="$2" vocab="$3" text="$4"
source "$(dirname "$0")/gemma3-model.sh"
PY="$CACHE/venv/bin/python"
# The venv alone (install-models.sh --model-only) holds no llama.cpp.
if [ ! -x "$PY" ] || ! "$PY" -c 'import llama_cpp' 2>/dev/null; then
  echo "skipped: no llama.cpp in $CACHE (bash scripts/install-models.sh)"
  exit 77
fi
here="$(dirname "$0")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
status=0
# Scores MODEL against llama.cpp under LABEL: one line, FAIL and the
# oracle's output when they disagree.
score() {
  local label="$1" model="$2" out
  if out="$("$PY" "$here/llama_cpp_oracle.py" "$pinferc" "$model" "$text" \
      --ctx 128 --chunks 1 --tolerance 0.002 --min-agreement 0.85 2>/dev/null)"; then
    echo "$label: $(echo "$out" | grep -E "perplexity|argmax" | tr "\n" " ")"
  else
    echo "$label: FAIL"
    echo "$out"
    status=1
  fi
}
for type in f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_K q3_K q4_K q5_K q6_K; do
  "$genmodel" --preset tiny --n-embd 256 --activation silu --type "$type" \
    --vocab "$vocab" -o "$work/m.gguf" >/dev/null
  score "$type" "$work/m.gguf"
done

# Qwen2 (Q/K/V biases, NeoX rope): scored against llama.cpp, then compiled:
# dense (cpu) and exact (rtx4090, layers split) executables give the
# reference's greedy tokens.
"$genmodel" --preset tiny --n-embd 256 --arch qwen2 --activation silu \
  --type q8_0 --vocab "$vocab" -o "$work/q.gguf" >/dev/null
score qwen2 "$work/q.gguf"
"$genmodel" --preset tiny --n-embd 256 --arch qwen2 --activation relu \
  --type q4_K --vocab "$vocab" -o "$work/q4.gguf" >/dev/null
ref="$("$pinferc" run "$work/q4.gguf" -p "Once upon a time" -n 12 --temp 0 2>/dev/null)"
"$pinferc" "$work/q4.gguf" --target cpu --sparsity dense -o "$work/dense" >/dev/null
"$pinferc" "$work/q4.gguf" --target rtx4090 --sparsity exact \
  --vram-budget 408.1MiB --min-granules 1 -o "$work/exact" | tail -1
for exe in dense exact; do
  got="$("$work/$exe" -p "Once upon a time" -n 12 --temp 0 2>/dev/null)"
  if [ "$got" = "$ref" ]; then
    echo "qwen2 q4_K $exe executable: the reference's tokens"
  else
    echo "qwen2 q4_K $exe executable: FAIL: '$got', reference '$ref'"
    status=1
  fi
done
exit $status
