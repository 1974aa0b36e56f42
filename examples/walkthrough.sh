#!/usr/bin/env bash
# A walkthrough of pinferc on a generated model: make a LLaMA-shaped ReLU
# model with planted activation sparsity, inspect and profile it, plan its
# placement for an RTX 4090, compile it into one executable, and run that
# executable next to the dense reference. Outputs go to examples/out/.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$ROOT/${BUILD_DIR:-build}"
OUT="$ROOT/examples/out"
mkdir -p "$OUT"
PINFERC="$BIN/tools/pinferc/pinferc"
GENMODEL="$BIN/tools/genmodel/pinfer-genmodel"
VOCAB="$ROOT/../shared/fixtures/vocab/ggml-vocab-llama-spm.gguf"
MODEL="$OUT/medium-relu.gguf"
PROMPT="Once upon a time"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. generate a 0.24B-parameter LLaMA-shaped ReLU model, q4_0 (90% of FFN neurons off per token)"
"$GENMODEL" --preset medium --type q4_0 --activation relu --vocab "$VOCAB" \
  --seed 1 --force -o "$MODEL"

step "2. inspect it"
"$PINFERC" inspect "$MODEL" >"$OUT/medium-relu.inspect.txt"
head -22 "$OUT/medium-relu.inspect.txt"
echo "  ... (full report: examples/out/medium-relu.inspect.txt)"

step "3. profile it on the built-in calibration text"
"$PINFERC" profile "$MODEL" --force -o "$OUT/medium-relu.trace"

# The whole of this small model's FFN would fit a 24 GiB card; a 460 MiB
# budget (the CUDA context alone takes 400) makes the split visible.
BUDGET=460MiB
step "4. plan placement for an RTX 4090 with $BUDGET of VRAM (plot: examples/out/medium-relu.plan.svg)"
"$PINFERC" plan "$MODEL" --trace "$OUT/medium-relu.trace" --target rtx4090 \
  --vram-budget "$BUDGET" -c 1024 --json "$OUT/medium-relu.plan.json" \
  --svg "$OUT/medium-relu.plan.svg"

step "5. the main job: compile it into one executable for the RTX 4090"
"$PINFERC" "$MODEL" --trace "$OUT/medium-relu.trace" --target rtx4090 \
  --vram-budget "$BUDGET" -c 1024 -o "$OUT/llama"

step "6. run the executable (no GPU here: it computes the GPU part on the CPU and says so)"
"$OUT/llama" -p "$PROMPT" -n 32 --temp 0 -t 2

step "7. the dense reference on the same prompt"
# The same function, summed in another order. The executable's greedy tokens
# are the reference's until two candidates' logits come within rounding
# noise of each other, which on this random model can happen within a few
# dozen tokens (a trained model's margins are far wider).
"$PINFERC" run "$MODEL" -p "$PROMPT" -n 32 --temp 0 -t 2

step "8. perplexity of both on a piece of the calibration text: within a few tenths of a percent"
head -c 2000 "$ROOT/compiler/data/calibration.txt" >"$OUT/sample.txt"
"$OUT/llama" --perplexity "$OUT/sample.txt" -t 2 2>&1 | tail -1
"$PINFERC" perplexity "$MODEL" -f "$OUT/sample.txt" -t 2 2>&1 | tail -1
