#!/usr/bin/env bash
# The real Gemma 3 270M as a chat server and in -cnv: the openai client's
# chat call, whole and streamed, and the first -cnv answer are the greedy
# continuation of the conversation in Gemma's turns (the file carries no
# chat template: the architecture's family is used); a completion's
# log-probabilities are llama.cpp's (llama-cpp-python's create_completion
# with logprobs) within 0.3 nats, on the same tokens at the same text
# offsets. Skips (77) without the model or the openai package
# (scripts/install-models.sh).
#
#   gemma3-server.sh PINFERC
set -euo pipefail
pinferc="$1"
source "$(dirname "$0")/gemma3-model.sh"
PY="$CACHE/venv/bin/python"
if [ ! -f "$MODEL" ] || ! "$PY" -c 'import openai, llama_cpp' 2>/dev/null; then
  echo "skipped: the model, the openai package or llama_cpp is absent (bash scripts/install-models.sh)"
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
"$PY" - "http://127.0.0.1:$port/v1" "$question" "$want" "$MODEL" <<'PYEOF'
import sys
import openai

base, question, want, model_file = sys.argv[1:5]
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

# Log-probabilities against llama.cpp's, token by token until the first
# token the two choose differently, which must be a near-tie by llama.cpp's
# own numbers (their quantised products differ).
import llama_cpp
prompt = "The capital of France is"
ours = client.completions.create(model=model, prompt=prompt, max_tokens=8,
                                 temperature=0, logprobs=3).choices[0].logprobs
llm = llama_cpp.Llama(model_path=model_file, n_ctx=512, logits_all=True,
                      verbose=False)
theirs = llm.create_completion(prompt, max_tokens=8, temperature=0,
                               logprobs=3)["choices"][0]["logprobs"]
compared = 0
for i, (a, b) in enumerate(zip(ours.tokens, theirs["tokens"])):
    if a != b:
        top = theirs["top_logprobs"][i]
        assert a in top and abs(top[a] - top[b]) < 0.5, (i, a, b, top)
        break
    assert ours.text_offset[i] == theirs["text_offset"][i], (i, ours, theirs)
    gap = abs(ours.token_logprobs[i] - float(theirs["token_logprobs"][i]))
    assert gap < 0.3, (i, a, ours.token_logprobs[i], theirs["token_logprobs"][i])
    compared += 1
assert compared >= 1, (ours, theirs)
print(f"logprobs: {compared} tokens within 0.3 nats of llama.cpp's")
PYEOF
cnv="$(printf '%s\n' "$question" | "$work/gemma" -cnv -n 16 --temp 0 2>/dev/null)"
grep -qF -- "> $want" <<<"$cnv" || { echo "FAIL: -cnv answered: $cnv"; exit 1; }
echo "gemma3 server and -cnv: Gemma's turns, the greedy answer"
