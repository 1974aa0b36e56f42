#!/usr/bin/env bash
# The executables' OpenAI-compatible server as a client sees it (curl):
# whole and streamed completions give the executable's own greedy text,
# chat works, every bad request gets its status and an OpenAI-style error
# and the server keeps serving, a client that goes away mid-stream frees
# it, and parallel clients each get their own answer. Bounded in time.
#
#   server-test.sh PINFERC GENMODEL VOCAB
set -euo pipefail
pinferc="$1"
genmodel="$2"
vocab="$3"
command -v curl >/dev/null || { echo "skipped: no curl (scripts/install-deps.sh)"; exit 77; }
work="$(mktemp -d)"
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  for p in "${pid2:-}" "${started_pid:-}"; do
    [ -z "$p" ] || kill "$p" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
"$genmodel" -o "$work/m.gguf" --vocab "$vocab" >/dev/null
"$pinferc" "$work/m.gguf" --target cpu -q -o "$work/exe"
# Starts the executable's server with "$@" added, its log in $work/$1;
# sets started_pid and started_port.
start_server() {
  local log="$work/$1"
  shift
  "$work/exe" --server --port 0 -t 1 -c 256 "$@" 2>"$log" &
  started_pid=$!
  for _ in $(seq 100); do
    grep -q "listening on" "$log" && break
    sleep 0.1
  done
  started_port="$(grep -o '127.0.0.1:[0-9]*' "$log" | cut -d: -f2)"
  [ -n "$started_port" ] || { cat "$log"; echo "FAIL: the server did not start"; exit 1; }
}
start_server log
pid=$started_pid
port=$started_port
url="http://127.0.0.1:$port"
status=0
fail() { echo "FAIL: $*"; status=1; }
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
post() { curl -s --max-time 60 "$url$1" -d "$2"; }

[ "$(curl -s --max-time 5 "$url/health" | field 'd["status"]')" = ok ] || fail "/health"
[ "$(curl -s "$url/v1/models" | field 'd["data"][0]["id"]')" = pinfer-synthetic ] || fail "/v1/models"

prompt="Once upon a time there was"
greedy_json="$("$work/exe" -p "$prompt" -n 12 --temp 0 --json -t 1 2>/dev/null)"
want="$(field 'd["text"]' <<<"$greedy_json")"
want_ids="$(field 'd["tokens"]' <<<"$greedy_json")"
got="$(post /v1/completions "{\"prompt\":\"$prompt\",\"max_tokens\":12,\"temperature\":0}" | field 'd["choices"][0]["text"]')"
[ "$got" = "$want" ] || fail "whole completion: '$got', expected '$want'"
streamed="$(curl -s -N --max-time 60 "$url/v1/completions" \
  -d "{\"prompt\":\"$prompt\",\"max_tokens\":12,\"temperature\":0,\"stream\":true}")"
[ "$(grep -v '^$' <<<"$streamed" | tail -1)" = "data: [DONE]" ] || fail "stream does not end with [DONE]"
joined="$(python3 -c '
import json, sys
text = ""
for line in sys.stdin:
    if line.startswith("data: {"):
        text += json.loads(line[6:])["choices"][0]["text"]
print(text)' <<<"$streamed")"
[ "$joined" = "$want" ] || fail "streamed completion: '$joined', expected '$want'"
# stream_options.include_usage: a last chunk with the usage, no choices.
usage="$(curl -s -N --max-time 60 "$url/v1/completions" \
  -d "{\"prompt\":\"$prompt\",\"max_tokens\":12,\"temperature\":0,\"stream\":true,\"stream_options\":{\"include_usage\":true}}" \
  | grep '^data: {' | tail -1 | cut -c7-)"
[ "$(field 'len(d["choices"]), d["usage"]["completion_tokens"]' <<<"$usage")" = "0 12" ] \
  || fail "include_usage: last chunk $usage"
chat="$(post /v1/chat/completions '{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hello"}],"max_tokens":5,"temperature":0}')"
[ "$(field 'd["usage"]["completion_tokens"]' <<<"$chat")" = 5 ] || fail "chat: $chat"
[ "$(field 'd["choices"][0]["message"]["role"]' <<<"$chat")" = assistant ] || fail "chat role: $chat"

# /tokenize and /detokenize: the executable's own tokens, and back.
ids="$(curl -s --max-time 10 "$url/tokenize" -d "{\"content\":\"$prompt\"}" | field 'd["tokens"]')"
[ "$(curl -s --max-time 10 "$url/tokenize" -d "{\"content\":\"$prompt\",\"add_special\":true}" | field 'd["tokens"][1:]')" = "$ids" ] \
  || fail "/tokenize add_special: no BOS in front of $ids"
back="$(curl -s --max-time 10 "$url/detokenize" -d "{\"tokens\":$ids}" | field 'd["content"]')"
[ "$back" = "$prompt" ] || fail "/detokenize: '$back', expected '$prompt'"

# Token prompts, llama-server's /completion and /props, log-probabilities.
python3 - "$url" "$prompt" "$want" "$ids" "$want_ids" <<'PYEOF' || fail "token prompts, /completion, /props or logprobs (above)"
import json, math, sys, urllib.request
url, prompt, want = sys.argv[1:4]
ids, want_ids = json.loads(sys.argv[4]), json.loads(sys.argv[5])

def post(path, body, stream=False):
    req = urllib.request.Request(url + path, json.dumps(body).encode())
    with urllib.request.urlopen(req, timeout=60) as r:
        text = r.read().decode()
    if not stream:
        return json.loads(text)
    events = [l[6:] for l in text.split("\n") if l.startswith("data: ")]
    return [json.loads(e) for e in events if e != "[DONE]"], events

greedy = {"temperature": 0}
# The prompt as ids (BOS included where the vocabulary adds it) and as a mix.
bos = post("/tokenize", {"content": prompt, "add_special": True})["tokens"]
by_ids = post("/v1/completions", {"prompt": bos, "max_tokens": 12, **greedy})
assert by_ids["choices"][0]["text"] == want, by_ids
# llama-server's mix: text (BOS in front) then an id.
mixed = post("/v1/completions", {"prompt": [prompt, ids[0]], "max_tokens": 6, **greedy})
plain = post("/v1/completions", {"prompt": bos + [ids[0]], "max_tokens": 6, **greedy})
assert mixed["choices"][0]["text"] == plain["choices"][0]["text"], (mixed, plain)
assert mixed["usage"]["prompt_tokens"] == len(bos) + 1, mixed

# /completion: the same text, whole and streamed; llama-server's fields.
native = post("/completion", {"prompt": prompt, "n_predict": 12, "return_tokens": True, **greedy})
assert native["content"] == want and native["stop"] is True, native
assert native["stop_type"] == "limit" and native["tokens_predicted"] == 12, native
assert native["tokens"] == want_ids, native
assert native["generation_settings"]["n_ctx"] == 256, native
events, raw = post("/completion", {"prompt": prompt, "n_predict": 12, "stream": True,
                                   "return_tokens": True, **greedy}, stream=True)
assert "".join(e["content"] for e in events) == want, events
assert events[-1]["stop"] is True and all(not e["stop"] for e in events[:-1]), events
assert sum((e["tokens"] for e in events), []) == native["tokens"], events
assert raw[-1] != "[DONE]"
# A stop word: cut, named, llama-server's stop_type.
word = want.split()[2]
cut = post("/completion", {"prompt": prompt, "n_predict": 12, "stop": [word], **greedy})
assert cut["content"] == want[: want.index(word)], cut
assert cut["stop_type"] == "word" and cut["stopping_word"] == word, cut
# Neutral values of samplers not built are taken; others refused by name.
# Streamed, a stop word ends it the same way.
events, _ = post("/completion", {"prompt": prompt, "n_predict": 12, "stop": [word],
                                 "stream": True, **greedy}, stream=True)
assert "".join(e["content"] for e in events) == cut["content"], events
assert events[-1]["stop_type"] == "word" and events[-1]["stopping_word"] == word, events[-1]
# Neutral values of samplers not built are taken, with their settings (as
# llama-server's web page sends them, to chat too); others refused by name.
web = {"mirostat": 0, "mirostat_tau": 5.0, "typical_p": 1.0, "logit_bias": [],
       "dry_multiplier": 0.0, "dry_base": 1.75, "xtc_threshold": 0.1,
       "samplers": ["top_k", "top_p", "min_p", "temperature"]}
assert post("/completion", {"prompt": prompt, "n_predict": 2, **web, **greedy})["content"]
assert post("/v1/chat/completions", {"messages": [{"role": "user", "content": "Hi"}],
                                     "max_tokens": -1, **web, **greedy})["choices"]

props = json.loads(urllib.request.urlopen(url + "/props", timeout=10).read())
assert props["default_generation_settings"]["n_ctx"] == 256, props
assert props["total_slots"] == 1 and props["model_path"] == "pinfer-synthetic", props

# Log-probabilities: the chosen token's is the likeliest under greedy
# sampling, each is at most 0, the alternatives' probabilities sum to at
# most 1, the tokens spell the text; streamed lists the same.
def check_entries(chosen, tops, k):
    for lp, top in zip(chosen, tops):
        assert lp <= 0, (lp, top)
        assert len(top) == k and abs(max(top) - lp) < 1e-6, (lp, top)
        assert top == sorted(top, reverse=True), top
        assert sum(math.exp(x) for x in top) <= 1 + 1e-5, top

whole = post("/v1/completions", {"prompt": prompt, "max_tokens": 12, "logprobs": 3, **greedy})
lp = whole["choices"][0]["logprobs"]
assert "".join(lp["tokens"]) == want, lp
assert lp["text_offset"][0] == len(prompt), lp["text_offset"]
assert all(t in top and top[t] == v for t, v, top in
           zip(lp["tokens"], lp["token_logprobs"], lp["top_logprobs"])), lp
# Greedy: the chosen token is among the 3 likeliest, so no fourth key.
check_entries(lp["token_logprobs"],
              [sorted(t.values(), reverse=True) for t in lp["top_logprobs"]], 3)
events, _ = post("/v1/completions", {"prompt": prompt, "max_tokens": 12, "logprobs": 3,
                                     "stream": True, **greedy}, stream=True)
streamed = sum((e["choices"][0]["logprobs"]["token_logprobs"] for e in events
                if e["choices"] and e["choices"][0]["logprobs"]), [])
assert streamed == lp["token_logprobs"], (streamed, lp)

chat_body = {"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 6,
             "logprobs": True, "top_logprobs": 2, **greedy}
chat = post("/v1/chat/completions", chat_body)
content = chat["choices"][0]["logprobs"]["content"]
assert "".join(c["token"] for c in content) == chat["choices"][0]["message"]["content"], chat
assert all(bytes(c["bytes"]).decode("utf-8", "replace") == c["token"] for c in content)
check_entries([c["logprob"] for c in content],
              [[t["logprob"] for t in c["top_logprobs"]] for c in content], 2)
events, _ = post("/v1/chat/completions", {**chat_body, "stream": True}, stream=True)
assert sum((e["choices"][0]["logprobs"]["content"] for e in events
            if e["choices"][0].get("logprobs")), []) == content, events

probs = post("/completion", {"prompt": prompt, "n_predict": 4, "n_probs": 2, **greedy})
entries = probs["completion_probabilities"]
assert [e["id"] for e in entries] == post("/completion", {"prompt": prompt, "n_predict": 4,
        "return_tokens": True, **greedy})["tokens"], entries
events, _ = post("/completion", {"prompt": prompt, "n_predict": 4, "n_probs": 2,
                                 "stream": True, **greedy}, stream=True)
assert sum((e.get("completion_probabilities", []) for e in events), []) == entries, events
check_entries([e["logprob"] for e in entries],
              [[t["logprob"] for t in e["top_logprobs"]] for e in entries], 2)
# Listed are the tokens wholly in the text a stop string cut, all of them
# up to the token that reaches into the stop string; streamed, the same.
body = {"prompt": prompt, "max_tokens": 12, "logprobs": 1, "stop": word, **greedy}
cut = post("/v1/completions", body)["choices"][0]
listed = cut["logprobs"]["tokens"]
assert cut["text"].startswith("".join(listed)), cut
assert not cut["text"].startswith("".join(lp["tokens"][: len(listed) + 1])), (cut, lp)
assert lp["tokens"][: len(listed)] == listed, (cut, lp)
events, _ = post("/v1/completions", {**body, "stream": True}, stream=True)
assert sum((e["choices"][0]["logprobs"]["tokens"] for e in events
            if e["choices"] and e["choices"][0]["logprobs"]), []) == listed, events
print("token prompts, /completion, /props, logprobs: ok")
PYEOF

# Bad requests: status, error type, and the next request still served.
expect() { # STATUS BODY [PATH]
  local code
  code="$(curl -s -o "$work/err" -w '%{http_code}' --max-time 30 "$url${3:-/v1/completions}" --data-binary "$2")"
  [ "$code" = "$1" ] || fail "expected $1 for ${2:0:40}, got $code: $(cat "$work/err")"
  field 'd["error"]["message"]' <"$work/err" >/dev/null || fail "no OpenAI error for ${2:0:40}"
  [ "$(curl -s --max-time 5 "$url/health" | field 'd["status"]')" = ok ] || fail "not serving after ${2:0:40}"
}
expect 400 '{not json'
expect 400 '{"prompt":"x","max_tokens":-5}'
expect 400 '{"prompt":"x","temperature":"hot"}'
expect 400 '{"prompt":"x","surprise":1}'
expect 400 '{"prompt":7}'
expect 400 '{"prompt":"x","max_tokens":100000}'
expect 404 '{"prompt":"x","model":"gpt-9"}'
expect 400 '{"tokens":[99999999]}' /detokenize
expect 400 '{"text":"x"}' /tokenize
expect 400 '{"messages":[{"role":"robot","content":"x"}]}' /v1/chat/completions
head -c 2000000 /dev/zero | tr '\0' a >"$work/big"
expect 413 "@$work/big"
# Chunked, the body is counted as it comes.
code="$(curl -s -o "$work/err" -w '%{http_code}' --max-time 30 -H 'Transfer-Encoding: chunked' \
  "$url/v1/completions" --data-binary "@$work/big")"
[ "$code" = 413 ] || fail "a chunked body over the limit: $code $(cat "$work/err")"
expect 400 '' /v1/completions
code="$(curl -s -o "$work/err" -w '%{http_code}' --max-time 30 "$url/v1/completions" -F prompt=x)"
[ "$code" = 400 ] || fail "a multipart form: $code $(cat "$work/err")"
# curl's -d sends a form's Content-Type; past 8 KiB the HTTP library would
# refuse it as too large by itself.
python3 -c 'import json; print(json.dumps({"prompt": "Hello", "max_tokens": 2, "user": "u" * 20000}))' >"$work/long"
[ "$(curl -s --max-time 30 "$url/v1/completions" -d "@$work/long" | field 'd["usage"]["completion_tokens"]')" = 2 ] \
  || fail "a 20 KB body sent as curl -d does"
code="$(curl -s -o /dev/null -w '%{http_code}' "$url/v2/nothing")"
[ "$code" = 404 ] || fail "unknown path: $code"

# Clients that stall in the middle of their request hold a connection each,
# not the server: /health still answers at once beside twelve of them.
python3 - "$port" <<'PYEOF' || fail "stalled clients kept /health waiting"
import socket, sys, time, urllib.request
port = int(sys.argv[1])
stalled = []
for _ in range(12):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
              b"Content-Length: 100\r\n\r\n{\"prompt\":")
    stalled.append(s)
time.sleep(0.3)
t0 = time.time()
with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
    assert r.status == 200
assert time.time() - t0 < 2, time.time() - t0
for s in stalled:
    s.close()
PYEOF

# A client that goes away mid-stream: the next request is served at once.
curl -s -N --max-time 30 "$url/v1/completions" \
  -d '{"prompt":"A long story","max_tokens":200,"stream":true}' | head -c 200 >/dev/null || true
again="$(post /v1/completions "{\"prompt\":\"$prompt\",\"max_tokens\":12,\"temperature\":0}" | field 'd["choices"][0]["text"]')"
[ "$again" = "$want" ] || fail "after a disconnect: '$again'"

# A prompt that extends the previous request's conversation reuses its KV
# cache (usage.prompt_tokens_details.cached_tokens) and answers as the
# executable's own fresh run does.
post /v1/completions "{\"prompt\":\"$prompt\",\"max_tokens\":12,\"temperature\":0}" >/dev/null
longer="$prompt$want and then"
want_longer="$("$work/exe" -p "$longer" -n 8 --temp 0 --json -t 1 2>/dev/null | field 'd["text"]')"
reply="$(post /v1/completions "$(python3 -c 'import json,sys; print(json.dumps({"prompt": sys.argv[1], "max_tokens": 8, "temperature": 0}))' "$longer")")"
[ "$(field 'd["choices"][0]["text"]' <<<"$reply")" = "$want_longer" ] || fail "cached prefix: $reply, expected '$want_longer'"
[ "$(field 'd["usage"]["prompt_tokens_details"]["cached_tokens"] > 5' <<<"$reply")" = True ] \
  || fail "cached prefix: no cached tokens: $reply"

# Parallel clients: each answer is its own prompt's greedy run.
other="The little dog"
want2="$("$work/exe" -p "$other" -n 12 --temp 0 --json -t 1 2>/dev/null | field 'd["text"]')"
post /v1/completions "{\"prompt\":\"$prompt\",\"max_tokens\":12,\"temperature\":0}" >"$work/a" &
post /v1/completions "{\"prompt\":\"$other\",\"max_tokens\":12,\"temperature\":0}" >"$work/b" &
wait %2 %3 2>/dev/null || wait
[ "$(field 'd["choices"][0]["text"]' <"$work/a")" = "$want" ] || fail "parallel A: $(cat "$work/a")"
[ "$(field 'd["choices"][0]["text"]' <"$work/b")" = "$want2" ] || fail "parallel B: $(cat "$work/b")"

# -cnv: each input line is a user turn in the template (chatml here: the
# generated model has none); the first answer is the greedy run of that
# prompt, and the chat ends at end of input.
turn=$'<|im_start|>user\nHello there<|im_end|>\n<|im_start|>assistant\n'
answer="$("$work/exe" -p "$turn" -n 4 --temp 0 --json -t 1 2>/dev/null | field 'd["text"]')"
chat_out="$(printf 'Hello there\nAgain\n' | timeout 60 "$work/exe" -cnv -n 4 --temp 0 -t 1 2>/dev/null)" \
  || fail "-cnv exited with an error"
[ "$(grep -c '^> ' <<<"$chat_out")" = 3 ] || fail "-cnv: expected 3 prompts: $chat_out"
grep -qF -- "> $answer" <<<"$chat_out" || fail "-cnv: first answer is not '$answer': $chat_out"
# The second turn runs over the first one's KV cache and answers as a fresh
# run of the whole conversation does.
turn2="$turn$answer"$'<|im_end|>\n<|im_start|>user\nAgain<|im_end|>\n<|im_start|>assistant\n'
answer2="$("$work/exe" -p "$turn2" -n 4 --temp 0 --json -t 1 2>/dev/null | field 'd["text"]')"
[ "$(grep '^> ' <<<"$chat_out" | sed -n 2p)" = "> $answer2" ] \
  || fail "-cnv: second answer is not '$answer2': $chat_out"

# As llama-cli: -cnv's -p is the first user turn, answered before any line
# is read (and shown after the "> "); -no-cnv after -cnv: no chat.
typed="$(printf 'Hello there\n' | timeout 60 "$work/exe" -cnv -sys 'Be brief.' -n 4 --temp 0 -t 1 2>/dev/null)"
first="$(timeout 60 "$work/exe" -cnv -sys 'Be brief.' -p 'Hello there' -n 4 --temp 0 -t 1 </dev/null 2>/dev/null)"
[ "$first" = "${typed/> /> Hello there$'\n'}" ] || fail "-cnv -p: '$first', expected the answer to 'Hello there'"
plain="$("$work/exe" -p "$prompt" -n 4 --temp 0 -t 1 2>/dev/null </dev/null)"
[ "$("$work/exe" -cnv -no-cnv -p "$prompt" -n 4 --temp 0 -t 1 2>/dev/null </dev/null)" = "$plain" ] \
  || fail "-cnv -no-cnv still chats"

# The OpenAI Python client (scripts/install-models.sh installs it into the
# cache's venv): whole and streamed, completion and chat.
CACHE="${PINFERC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pinferc}"
PY="$CACHE/venv/bin/python"
if [ -x "$PY" ] && "$PY" -c 'import openai' 2>/dev/null; then
  "$PY" - "$url/v1" "$prompt" "$want" <<'PYEOF' || fail "the openai client"
import sys
import openai

base, prompt, want = sys.argv[1:4]
client = openai.OpenAI(base_url=base, api_key="none", timeout=60)
model = client.models.list().data[0].id
r = client.completions.create(model=model, prompt=prompt, max_tokens=12,
                              temperature=0)
assert r.choices[0].text == want, (r.choices[0].text, want)
assert r.usage.completion_tokens == 12
text = "".join(c.choices[0].text for c in client.completions.create(
    model=model, prompt=prompt, max_tokens=12, temperature=0, stream=True))
assert text == want, (text, want)
chat = client.chat.completions.create(
    model=model, messages=[{"role": "user", "content": "Hello"}],
    max_tokens=5, temperature=0)
assert chat.choices[0].message.role == "assistant"
parts = [c.choices[0].delta.content or "" for c in client.chat.completions.create(
    model=model, messages=[{"role": "user", "content": "Hello"}],
    max_tokens=5, temperature=0, stream=True)]
assert "".join(parts) == chat.choices[0].message.content
try:
    client.completions.create(model=model, prompt=prompt, max_tokens=-2)
    raise SystemExit("a negative max_tokens was accepted")
except openai.BadRequestError as e:
    assert "max_tokens" in str(e)
print("openai client: completions, chat, streams and errors as expected")
PYEOF
else
  echo "openai client absent (scripts/install-models.sh): that part skipped"
fi

# What llama-server clients send: a prompt as an array of one, the length
# as n_predict, chat content as text parts, fields asking for what is done
# anyway; other values of those fields are refused by name.
got="$(post /v1/completions "{\"prompt\":[\"$prompt\"],\"n_predict\":12,\"temperature\":0,\"cache_prompt\":true,\"logit_bias\":{}}" | field 'd["choices"][0]["text"]')"
[ "$got" = "$want" ] || fail "llama-server fields: '$got', expected '$want'"
plain="$(post /v1/chat/completions '{"messages":[{"role":"user","content":"Hello"}],"max_tokens":5,"temperature":0}' | field 'd["choices"][0]["message"]["content"]')"
parts="$(post /v1/chat/completions '{"messages":[{"role":"user","content":[{"type":"text","text":"Hel"},{"type":"text","text":"lo"}]}],"max_tokens":5,"temperature":0}' | field 'd["choices"][0]["message"]["content"]')"
[ "$parts" = "$plain" ] || fail "content parts: '$parts', expected '$plain'"
expect 400 '{"prompt":"x","logit_bias":{"5":10}}'
expect 400 '{"prompt":[1,99999999]}'
expect 400 '{"prompt":["one","two"]}'
expect 400 '{"prompt":"x","logprobs":50}'
expect 400 '{"messages":[{"role":"user","content":"x"}],"top_logprobs":2}' /v1/chat/completions
expect 400 '{"prompt":"x","mirostat":2}' /completion
expect 400 '{"prompt":"x","logprobs":2}' /completion
python3 -c 'print("{\"prompt\":\"x\",\"user\":" + "[" * 100000 + "]" * 100000 + "}")' >"$work/deep"
expect 400 "@$work/deep"
expect 400 "@$work/deep" /tokenize
expect 400 '{"prompt":"x","surprise":1}' /completion
expect 400 '{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}' /v1/chat/completions

# A length the request leaves out ends with the context (-c 256), as
# llama-server's; one it gives must fit, as OpenAI's.
python3 - "$url" <<'PYEOF' || fail "lengths near the end of the context"
import json, sys, urllib.error, urllib.request
url = sys.argv[1]
def post(path, body):
    req = urllib.request.Request(url + path, json.dumps(body).encode())
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)
text = "one two three four five six seven eight nine ten " * 40
while len(post("/tokenize", {"content": text, "add_special": True})[1]["tokens"]) > 248:
    text = text[:-6]
status, r = post("/v1/completions", {"prompt": text, "temperature": 0})
assert status == 200, r
assert r["usage"]["total_tokens"] == 256, r["usage"]
assert r["choices"][0]["finish_reason"] == "length", r
status, r = post("/v1/completions", {"prompt": text, "max_tokens": 16})
assert status == 400 and r["error"]["code"] == "context_length_exceeded", r
# Integers where the field counts; llama-server's negative temperature and
# top_k are greedy and no limit.
assert post("/v1/completions", {"prompt": "x", "max_tokens": 2.5})[0] == 400
status, r = post("/v1/completions", {"prompt": "x", "max_tokens": 2,
                                     "temperature": -1, "top_k": -1})
assert status == 200 and r["usage"]["completion_tokens"] == 2, r
assert post("/tokenize", {"content": "x", "add_special": "yes"})[0] == 400
PYEOF

# The executable's flags are the requests' defaults, as llama-server's:
# started greedy with -n 12, a bare request is the greedy run.
start_server log2 --temp 0 -n 12
pid2=$started_pid
got="$(curl -s --max-time 60 "http://127.0.0.1:$started_port/v1/completions" -d "{\"prompt\":\"$prompt\"}" | field 'd["choices"][0]["text"]')"
kill "$pid2" 2>/dev/null || true
[ "$got" = "$want" ] || fail "flag defaults: '$got', expected '$want'"

[ $status = 0 ] && echo "server: all checks passed (port $port)"
exit $status
