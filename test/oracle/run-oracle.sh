#!/usr/bin/env bash
# Runs llama_cpp_oracle.py with the environment scripts/install-models.sh
# made (found at run time, so installing it later needs no reconfigure).
# Exits 77, a ctest skip, with one line when it is absent.
set -euo pipefail
source "$(dirname "$0")/gemma3-model.sh"
PY="$CACHE/venv/bin/python"
if [ ! -x "$PY" ] || [ ! -f "$MODEL" ]; then
  echo "skipped: no real model or llama.cpp in $CACHE (bash scripts/install-models.sh)"
  exit 77
fi
here="$(dirname "$0")"
pinferc="$1"
shift
exec "$PY" "$here/llama_cpp_oracle.py" "$pinferc" "$MODEL" "$@"
