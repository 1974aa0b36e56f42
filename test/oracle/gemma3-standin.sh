#!/usr/bin/env bash
# The real Gemma 3 270M compiled for an RTX 4090 with its default budget
# (attention, every FFN neuron and the output head on the GPU), run through
# the test-only libcuda stand-in with its kernels built as host C++
# (test/cuda_host): the greedy tokens must be the dense reference's. Covers
# on a trained model what the generated ones cannot: Q/K norms, sliding
# windows with their own RoPE base, head size 256 with one KV head, mixed
# K-quant projections, GELU, the tied head; in exact mode and in the
# default one (dense: the source's Q6_K/Q4_K down rows, on tensor cores in
# the prompt). Skips (77) without the model.
#
#   gemma3-standin.sh PINFERC STANDIN_DIR
set -euo pipefail
pinferc="$1"
standin="$2"
here="$(cd "$(dirname "$0")" && pwd)"
source "$(dirname "$0")/gemma3-model.sh"
skip_without_gemma3
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
prompt="The capital of France is"
ref="$("$pinferc" run "$MODEL" -p "$prompt" -n 4 --temp 0 2>/dev/null)"
echo "reference: $ref"
# Exact mode, and the default one (dense for GELU: the source's down rows,
# their tiles in the prompt).
for mode in exact auto; do
  "$pinferc" "$MODEL" --target rtx4090 --sparsity "$mode" -q -o "$work/g"
  "$pinferc" "$MODEL" --target rtx4090 --sparsity "$mode" -q --emit=cuda >"$work/g.cu"
  bash "$here/../cuda_host/build-host-kernels.sh" "$work/g.cu" "$work/g.so"
  json="$(LD_LIBRARY_PATH="$standin" PINFER_CUDA_STANDIN_KERNELS="$work/g.so" \
    "$work/g" -p "$prompt" -n 4 --temp 0 --json 2>"$work/err")" || {
    cat "$work/err"
    exit 1
  }
  got="$(python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["text"], d["sparsity_mode"], d["output_head_device"], d["gpu_active"])' <<<"$json")"
  echo "stand-in ($mode): $got"
  want="$(printf '%s' "$ref" | sed "s/^$prompt//") $([ "$mode" = auto ] && echo dense || echo "$mode") gpu True"
  if [ "$got" != "$want" ]; then
    echo "FAIL: the GPU path's tokens (or mode, or placement) differ from the reference's"
    exit 1
  fi
done
