#!/usr/bin/env bash
# Gemma 3 270M (Q4_K_M) compiled: a dense --target cpu executable and an
# exact rtx4090 executable whose layers are split between the halves (the
# GPU half computed on the CPU where there is no GPU) give the dense
# reference's greedy tokens. Skips (77) without scripts/install-models.sh.
set -euo pipefail
pinferc="$1"
source "$(dirname "$0")/gemma3-model.sh"
skip_without_gemma3
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
prompt="The capital of France is"
ref="$("$pinferc" run "$MODEL" -p "$prompt" -n 16 --temp 0 2>/dev/null)"
echo "reference: $ref"
"$pinferc" "$MODEL" --target cpu --sparsity dense -o "$work/dense" >/dev/null
"$pinferc" "$MODEL" --target rtx4090 --sparsity exact --vram-budget 420MiB \
  -o "$work/exact" 2>&1 | tail -1
status=0
# Gemma 3's post norms are steps of the lowered program, in their place.
steps="$("$pinferc" "$MODEL" --target cpu --sparsity dense --emit=steps)"
want="steps layer 0: attn_norm attention@cpu attn_post_norm attn_add ffn_norm ffn_half@cpu ffn_post_norm ffn_add"
if [ "$(echo "$steps" | head -1)" != "$want" ]; then
  echo "FAIL: layer 0's steps: $(echo "$steps" | head -1)"
  status=1
fi
for exe in dense exact; do
  got="$("$work/$exe" -p "$prompt" -n 16 --temp 0 2>/dev/null)"
  echo "$exe: $got"
  if [ "$got" != "$ref" ]; then
    echo "FAIL: the $exe executable's tokens differ from the reference's"
    status=1
  fi
done
exit $status
