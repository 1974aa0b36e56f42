#!/usr/bin/env bash
# Runs llama_cpp_oracle.py with the environment scripts/install-models.sh
# made (found at run time, so installing it later needs no reconfigure).
# Exits 77, a ctest skip, with one line when it is absent.
set -euo pipefail
CACHE="${PINFERC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pinferc}"
PY="$CACHE/venv/bin/python"
MODEL="$CACHE/gemma3-270m-q4_k_m.gguf"
if [ ! -x "$PY" ] || [ ! -f "$MODEL" ]; then
  echo "skipped: no real model or llama.cpp in $CACHE (bash scripts/install-models.sh)"
  exit 77
fi
here="$(dirname "$0")"
pinferc="$1"
shift
exec "$PY" "$here/llama_cpp_oracle.py" "$pinferc" "$MODEL" "$@"
