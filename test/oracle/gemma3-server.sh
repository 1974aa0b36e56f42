#!/usr/bin/env bash
# The real Gemma 3 270M as a chat server and in -cnv: the openai client's
# chat call, whole and streamed, and the first -cnv answer are the greedy
# continuation of the conversation in Gemma's turns (the file carries no
# chat template: the architecture's family is used). Skips (77) without
# the model or the openai package (scripts/install-models.sh).
#
#   gemma3-server.sh PINFERC
set -euo pipefail
pinferc="$1"
source "$(dirname "$0")/gemma3-model.sh"
PY="$CACHE/venv/bin/python"
if [ ! -f "$MODEL" ] || ! "$PY" -c 'import openai' 2>/dev/null; then
  echo "skipped: the model or the openai package is absent (bash scripts/install-models.sh)"
  exit 77
fi
work="$(mktemp -d)"
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
"$pinferc" "$MODEL" --target cpu --sparsity dense -q -o "$work/gemma"
question="What is the capital of France?"
turns=$'<start_of_turn>user\n'"$question"$'<end_of_turn>\n<start_of_turn>model\n'
want="$("$work/gemma" -p "$turns" -n 16 --temp 0 --json 2>/dev/null |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["text"])')"
echo "greedy: $want"
"$work/gemma" --server --port 0 -c 512 2>"$work/log" &
pid=$!
for _ in $(seq 200); do
  grep -q "listening on" "$work/log" && break
  sleep 0.1
done
grep "listening on" "$work/log" | grep -q "chat template gemma" \
  || { cat "$work/log"; echo "FAIL: not serving with Gemma's template"; exit 1; }
port="$(grep -o '127.0.0.1:[0-9]*' "$work/log" | cut -d: -f2)"
"$PY" - "http://127.0.0.1:$port/v1" "$question" "$want" <<'PYEOF'
import sys
import openai

base, question, want = sys.argv[1:4]
client = openai.OpenAI(base_url=base, api_key="none", timeout=120)
model = client.models.list().data[0].id
messages = [{"role": "user", "content": question}]
whole = client.chat.completions.create(model=model, messages=messages,
                                       max_tokens=16, temperature=0)
got = whole.choices[0].message.content
print("chat:", repr(got))
assert got == want, (got, want)
parts = client.chat.completions.create(model=model, messages=messages,
                                       max_tokens=16, temperature=0,
                                       stream=True)
streamed = "".join(c.choices[0].delta.content or "" for c in parts)
assert streamed == want, (streamed, want)
PYEOF
cnv="$(printf '%s\n' "$question" | "$work/gemma" -cnv -n 16 --temp 0 2>/dev/null)"
grep -qF -- "> $want" <<<"$cnv" || { echo "FAIL: -cnv answered: $cnv"; exit 1; }
echo "gemma3 server and -cnv: Gemma's turns, the greedy answer"
