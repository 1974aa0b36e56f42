#!/usr/bin/env python3
"""Load test of an executable's --server: N concurrent clients for M seconds.

    python3 bench/server_load.py --build-dir build [--preset tiny] [--clients 4] [--seconds 20]

Generates a model (pinfer-genmodel, cached in BUILD/server-load), compiles
it for the CPU, starts `EXE --server --port 0`, learns each of a handful
of prompts' greedy answer from the executable's own `-p` run, then lets the
clients send whole completion requests (greedy, max_tokens tokens, a
prompt drawn in turn) until the time is up. Prints one table: requests,
requests/s, latency percentiles (whole request, queueing included), tokens
generated per second, and how many answers were lost (HTTP errors) or
mixed up (not their own prompt's greedy answer). Requests are served one
at a time, so latency grows with the clients while requests/s stays that
of one decoder.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

PROMPTS = ["Once upon a time", "The little dog ran", "In the morning the",
           "She opened the door and", "Far away in the hills",
           "The old man said", "It was raining when", "At the end of the"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--threads", type=int, default=0, help="server -t")
    args = ap.parse_args()
    b = os.path.abspath(args.build_dir)
    work = f"{b}/server-load"
    os.makedirs(work, exist_ok=True)
    model = f"{work}/{args.preset}.gguf"
    if not os.path.exists(model):
        subprocess.run([f"{b}/tools/genmodel/pinfer-genmodel", "--preset",
                        args.preset, "--type", "q8_0", "-o", model],
                       check=True, capture_output=True)
    exe = f"{work}/{args.preset}"
    subprocess.run([f"{b}/tools/pinferc/pinferc", model, "--target", "cpu",
                    "-q", "-o", exe], check=True)
    threads = ["-t", str(args.threads)] if args.threads else []
    want = {}
    for p in PROMPTS:
        out = subprocess.run([exe, "-p", p, "-n", str(args.max_tokens),
                              "--temp", "0", "--json"] + threads,
                             capture_output=True, text=True, check=True)
        want[p] = json.loads(out.stdout)["text"]
    server = subprocess.Popen([exe, "--server", "--port", "0"] + threads,
                              stderr=subprocess.PIPE, text=True)
    try:
        line = server.stderr.readline()
        port = int(line.split("127.0.0.1:")[1].split()[0])
        url = f"http://127.0.0.1:{port}/v1/completions"
        lock = threading.Lock()
        latencies, lost, mixed, tokens = [], [0], [0], [0]
        deadline = time.time() + args.seconds

        def client(k):
            i = k
            while time.time() < deadline:
                p = PROMPTS[i % len(PROMPTS)]
                i += args.clients
                body = json.dumps({"prompt": p, "max_tokens": args.max_tokens,
                                   "temperature": 0}).encode()
                t0 = time.time()
                try:
                    with urllib.request.urlopen(urllib.request.Request(
                            url, data=body), timeout=300) as r:
                        d = json.load(r)
                except Exception:
                    with lock:
                        lost[0] += 1
                    continue
                dt = time.time() - t0
                with lock:
                    latencies.append(dt)
                    tokens[0] += d["usage"]["completion_tokens"]
                    if d["choices"][0]["text"] != want[p]:
                        mixed[0] += 1

        t0 = time.time()
        workers = [threading.Thread(target=client, args=(k,))
                   for k in range(args.clients)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        elapsed = time.time() - t0
    finally:
        server.terminate()
        server.wait()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), "unknown CPU")
    n = len(latencies)
    q = statistics.quantiles(latencies, n=100) if n >= 2 else [0] * 99
    print(f"{args.preset} model, {args.clients} clients, {args.seconds:.0f} s, "
          f"{args.max_tokens} tokens per answer; {cpu}, {os.cpu_count()} threads")
    print(f"{'requests':>8} {'req/s':>7} {'p50 s':>7} {'p90 s':>7} "
          f"{'p99 s':>7} {'tok/s':>7} {'lost':>5} {'mixed':>5}")
    print(f"{n:8d} {n / elapsed:7.2f} {q[49]:7.3f} {q[89]:7.3f} {q[98]:7.3f} "
          f"{tokens[0] / elapsed:7.1f} {lost[0]:5d} {mixed[0]:5d}")
    return 1 if lost[0] or mixed[0] else 0


if __name__ == "__main__":
    sys.exit(main())
