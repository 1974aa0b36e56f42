#!/usr/bin/env python3
"""pinferc against llama.cpp on the same model files, side by side.

    python3 bench/vs_llama_cpp.py --build-dir build [--rounds 3] [--threads 2]
        [MODEL.gguf ...]

Without models it uses the real Gemma 3 270M (Q4_K_M) that
scripts/install-models.sh installs. llama.cpp is PyPI's llama-cpp-python
from the same script (a CPU build with GGML_NATIVE). For each model it
compiles one executable with `pinferc MODEL --target cpu` (the main job's
own choice of sparsity) and runs, in interleaved rounds so that the
machine's noise falls on all alike:

  - llama.cpp: greedy completion of the prompt, timed by llama.cpp's own
    counters (llama_perf_context: prompt evaluation and generation, no
    Python sampling overhead);
  - the compiled executable and `pinferc run` (the dense reference), timed
    by their own `prompt eval time` / `eval time` lines (--json).

It prints the CPU, then one table: prompt and generation tokens/s (median
of the rounds) and each runner's ratio to llama.cpp.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

from llama_runner import LLAMA_CPP, cache_dir  # bench/llama_runner.py

PROMPT = ("The history of the city begins with a small settlement on the "
          "river, where traders from the north and the south met to exchange "
          "grain, salt and cloth")


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
            else:
                name = "unknown CPU"
        with open("/proc/cpuinfo") as f:
            flags = next((l for l in f if l.startswith("flags")), "").split()
        isa = [x for x in ("avx2", "fma", "f16c", "avx512f", "avx512bw",
                           "avx512_vnni", "avx512_bf16", "amx_int8")
               if x in flags]
        # pinferc's prompts use AMX tiles where the CPU has them, their
        # VNNI form at the AVX-512 kernel level without them, unless
        # PINFER_AMX says otherwise (0: off, vnni: the VNNI form).
        env = os.environ.get("PINFER_AMX", "")
        avx512 = all(f in flags for f in ("avx512f", "avx512bw", "avx512vl",
                                          "avx512_vnni"))
        tiles = ("off" if env == "0" or not avx512 else
                 "amx" if "amx_int8" in flags and "amx_tile" in flags
                 and env != "vnni" else "vnni")
        return (f"{name} ({os.cpu_count()} CPUs; {' '.join(isa)}); "
                f"pinferc tiles: {tiles}")
    except OSError:
        return "unknown CPU"


def run_llama_cpp(py, model, n, threads):
    out = subprocess.run([py, "-c", LLAMA_CPP, model, PROMPT, str(n),
                          str(threads)], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError("llama.cpp: " + out.stderr.strip().splitlines()[-1])
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_pinferc(cmd, n, threads):
    out = subprocess.run(cmd + ["-p", PROMPT, "-n", str(n), "--temp", "0",
                                "-t", str(threads), "--json"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(" ".join(cmd[:2]) + ": " + out.stderr.strip())
    timings = json.loads(out.stdout)["timings"]
    return {"prompt_tps": timings["prompt_tokens_per_s"],
            "gen_tps": timings["gen_tokens_per_s"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="*")
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("-n", type=int, default=32, help="tokens to generate")
    ap.add_argument("--prompt-repeat", type=int, default=1,
                    help="the prompt this many times over (longer prompts "
                    "weigh prompt evaluation over per-call costs)")
    args = ap.parse_args()
    global PROMPT
    PROMPT = " ".join([PROMPT] * max(1, args.prompt_repeat))

    cache = cache_dir()
    py = os.path.join(cache, "venv", "bin", "python")
    models = args.models or [os.path.join(cache, "gemma3-270m-q4_k_m.gguf")]
    if not os.path.exists(py) or not all(os.path.exists(m) for m in models):
        sys.exit("vs_llama_cpp: needs scripts/install-models.sh "
                 "(llama-cpp-python and the model)")
    pinferc = os.path.join(args.build_dir, "tools", "pinferc", "pinferc")

    print(f"CPU: {cpu_name()}; {args.threads} threads, {args.rounds} rounds, "
          f"prompt {len(PROMPT)} chars, {args.n} generated tokens")
    # How scripts/install-models.sh built llama.cpp (without its AMX
    # products on AMX CPUs, where they fault): part of what the ratios mean.
    try:
        with open(os.path.join(cache, "venv", "llama-cpp-build-flags")) as f:
            print(f"llama.cpp build: {f.read().strip() or 'native'}")
    except OSError:
        pass
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in models:
            exe = os.path.join(tmp, os.path.basename(model) + ".exe")
            out = subprocess.run([pinferc, model, "--target", "cpu", "-q",
                                  "-o", exe], capture_output=True, text=True)
            runners = {"llama.cpp": lambda: run_llama_cpp(py, model, args.n,
                                                         args.threads),
                       "pinferc run": lambda: run_pinferc(
                           [pinferc, "run", model], args.n, args.threads)}
            if out.returncode == 0:
                runners["executable"] = lambda: run_pinferc(
                    [exe], args.n, args.threads)
            else:
                print(f"{model}: compile failed: {out.stderr.strip()}")
            results = {k: [] for k in runners}
            for _ in range(args.rounds):
                for name, fn in runners.items():
                    results[name].append(fn())
            med = {k: {m: statistics.median(r[m] for r in v)
                       for m in ("prompt_tps", "gen_tps")}
                   for k, v in results.items()}
            base = med["llama.cpp"]
            for name, m in med.items():
                rows.append((os.path.basename(model), name, m["prompt_tps"],
                             m["prompt_tps"] / base["prompt_tps"],
                             m["gen_tps"], m["gen_tps"] / base["gen_tps"]))
    print(f"{'model':32} {'runner':12} {'prompt t/s':>10} {'x llama':>8} "
          f"{'gen t/s':>8} {'x llama':>8}")
    for r in rows:
        print(f"{r[0]:32} {r[1]:12} {r[2]:10.1f} {r[3]:8.2f} {r[4]:8.1f} "
              f"{r[5]:8.2f}")


if __name__ == "__main__":
    main()
