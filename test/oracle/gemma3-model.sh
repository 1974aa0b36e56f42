# Sourced by the oracle scripts: CACHE, where scripts/install-models.sh
# keeps the real model and the llama.cpp environment, and MODEL, the Gemma 3
# 270M file there; skip_without_gemma3 exits 77 (skipped) when it is absent.
CACHE="${PINFERC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pinferc}"
MODEL="$CACHE/gemma3-270m-q4_k_m.gguf"
skip_without_gemma3() {
  if [ ! -f "$MODEL" ]; then
    echo "skipped: $MODEL is absent (bash scripts/install-models.sh)"
    exit 77
  fi
}
