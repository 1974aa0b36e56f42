#!/usr/bin/env python3
"""CPU benchmark of pinferc: token generation against the memory bandwidth limit.

One command (from the repository root, after building pinferc,
pinfer-genmodel and pinfer-bench-bandwidth):

    python3 bench/run.py --build-dir build            # ~10 min on 2 cores
    python3 bench/run.py --build-dir build --quick    # ~2 min

It generates synthetic LLaMA-shaped models (1b preset: 2048 x 5632 x 22
layers, ~1.1 B parameters) in F16, Q8_0 and Q4_0, each once with SiLU (dense
activations) and once with ReLU and planted 90 % activation sparsity; models
go to BUILD/bench-models and are reused when present. It measures the
machine's read bandwidth with pinfer-bench-bandwidth, then runs every model
and mode with 1 and 2 threads (median of --reps runs) and prints one table:

  prompt and generation tokens/s, bytes of weights read per generated token
  (the reference: every matrix of the model; a compiled executable: what it
  counted as it ran, from its --json), achieved bandwidth = bytes/token x
  tokens/s, its ratio to the measured read bandwidth at the same thread
  count, and the peak resident memory of the run (getrusage of the child).

Both models run the dense reference (`pinferc run`); the sparse one also
runs the compiled executable (`pinferc MODEL --target cpu --sparsity
dense|exact|predicted -o OUT`) in each mode. When compiling fails the row
says so. The "runner" column says which program produced each row.

In the same rounds, on the same weights: llama.cpp (PyPI's
llama-cpp-python, which scripts/install-models.sh builds from source for
this CPU; left out with one line where it is absent) on every model, and,
with --powerinfer-main PATH, PowerInfer's CPU build on each ReLU model's
PowerInfer file. Cells run in interleaved rounds (every cell once per
round, --reps rounds). A second table then gives decode and prompt tokens/s
of llama.cpp, PowerInfer, the dense reference and the fastest executable,
each as a ratio to llama.cpp.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time

from llama_runner import LLAMA_CPP, cache_dir  # bench/llama_runner.py

# ggml type id -> (block elements, block bytes) for the types genmodel writes.
GGML_BLOCK = {0: (1, 4), 1: (1, 2), 30: (1, 2), 8: (32, 34), 2: (32, 18)}
TYPE_NAMES = {0: "f32", 1: "f16", 30: "bf16", 8: "q8_0", 2: "q4_0"}

PROMPT = ("The history of the city begins with a small settlement on the "
          "river, where traders from the north and the south met to exchange "
          "grain, salt and cloth")


# ---- GGUF: just enough to list tensors and their sizes ----------------------

def _read_gguf_tensors(path):
    """Returns ({name: (type, [dims], nbytes)}, {key: value}) of a GGUF file."""
    with open(path, "rb") as f:
        data = f.read(64 << 20)  # metadata and tensor infos are at the front
    pos = 0

    def take(fmt):
        nonlocal pos
        vals = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return vals[0] if len(vals) == 1 else vals

    def string():
        nonlocal pos
        n = take("Q")
        s = data[pos:pos + n].decode("utf-8", "replace")
        pos += n
        return s

    scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?",
              10: "Q", 11: "q", 12: "d"}

    def value(t):
        if t in scalar:
            return take(scalar[t])
        if t == 8:
            return string()
        if t == 9:
            et, n = take("I"), take("Q")
            if et in scalar and n > 64:  # large arrays: skip, not needed
                nonlocal pos
                pos += n * struct.calcsize("<" + scalar[et])
                return None
            return [value(et) for _ in range(n)]
        raise ValueError(f"{path}: offset {pos}: unknown GGUF value type {t}")

    magic = data[:4]
    if magic not in (b"GGUF", b"PWRI"):
        raise ValueError(f"{path}: offset 0: expected GGUF magic, got {magic!r}")
    pos = 4
    take("I")  # version
    n_tensors, n_kv = take("Q"), take("Q")
    kv = {}
    for _ in range(n_kv):
        key = string()
        kv[key] = value(take("I"))
    tensors = {}
    for _ in range(n_tensors):
        name = string()
        nd = take("I")
        dims = [take("Q") for _ in range(nd)]
        ttype = take("I")
        take("Q")  # offset
        n = 1
        for d in dims:
            n *= d
        be, bb = GGML_BLOCK.get(ttype, (1, 4))
        tensors[name] = (ttype, dims, n // be * bb)
    return tensors, kv


def weight_bytes(tensors, mode, frac_computed):
    """Bytes of weights one generated token reads.

    dense: every tensor except token_embd (one row of it is read) and the
    PowerInfer extras (predictors, transposed down). exact: attention, output
    and the full gate (it decides which neurons fire) plus up and down rows
    of the computed neurons. predicted: predictors plus gate, up and down rows
    of the computed neurons. frac_computed: per layer share of FFN neurons
    computed per token, from the executable's JSON.
    """
    total = 0
    for name, (ttype, dims, nbytes) in tensors.items():
        if name.startswith("token_embd"):
            total += nbytes // max(dims[-1], 1)
            continue
        parts = name.split(".")
        kind = parts[2] if len(parts) > 2 and parts[0] == "blk" else name
        layer = int(parts[1]) if parts[0] == "blk" else -1
        f = frac_computed.get(layer, 1.0) if frac_computed else 1.0
        if kind in ("fc1", "fc2"):
            total += nbytes if mode == "predicted" else 0
        elif kind == "ffn_down_t":
            continue
        elif kind == "ffn_gate":
            total += nbytes if mode in ("dense", "exact") else int(nbytes * f)
        elif kind in ("ffn_up", "ffn_down"):
            total += nbytes if mode == "dense" else int(nbytes * f)
        else:
            total += nbytes
    return total


# ---- running --------------------------------------------------------------

def run_child(cmd, timeout, cwd=None):
    """Runs cmd; returns (rc, stdout, stderr, peak RSS in MiB)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=cwd)
        deadline = time.time() + timeout
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.time() > deadline:
                proc.kill()
                pid, status, ru = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return (proc.returncode, out.read().decode("utf-8", "replace"),
                err.read().decode("utf-8", "replace"), ru.ru_maxrss / 1024.0)


def last_json(text):
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                pass
    return None


def parse_timings(kind, rc, out, err):
    """{"prompt_tps", "gen_tps", "json"} of one run, or why it has none."""
    if rc != 0:
        msg = (err.strip().splitlines() or ["?"])[-1]
        return f"exit {rc}: {msg[:80]}"
    if kind == "powerinfer":
        # PowerInfer (a llama.cpp of late 2023) prints its timings on
        # stderr: "prompt eval time = ... ( ..., X tokens per second)" and
        # "eval time = ... runs ( ..., X tokens per second)".
        pp = re.search(r"prompt eval time.*?([\d.]+) tokens per second", err)
        tg = re.search(r"\s eval time.*?([\d.]+) tokens per second", err)
        if not pp or not tg:
            return "no timings in its output"
        return dict(prompt_tps=float(pp.group(1)), gen_tps=float(tg.group(1)))
    js = last_json(out)
    if not js:
        return "no JSON in its output"
    if kind == "llama.cpp":
        return dict(js)
    t = js["timings"]
    return dict(prompt_tps=t["prompt_tokens_per_s"],
                gen_tps=t["gen_tokens_per_s"], json=js)


def print_ratios(rows, types, threads):
    """The issue-style summary: per type and thread count, llama.cpp,
    PowerInfer, the dense reference and the fastest executable, each with
    its ratio to llama.cpp on the same weights."""
    def get(ty, act, runner, mode=None, nt=None, key="gen_tps"):
        best = None
        for r in rows:
            if ("skipped" in r or r["type"] != ty or r["act"] != act
                    or r["runner"] != runner or r["threads"] != nt
                    or (mode and r["mode"] != mode)):
                continue
            if best is None or r[key] > best[key]:
                best = r
        return best

    for nt in threads:
        print(f"\n{nt} thread(s): tok/s (x llama.cpp on the same weights)")
        print("| | llama.cpp | PowerInfer | pinferc run | best executable |")
        print("|---|---|---|---|---|")
        for label, act, key in (("decode, dense (SiLU)", "silu", "gen_tps"),
                                ("decode, ReLU 90 % sparse", "relu",
                                 "gen_tps"),
                                ("prompt eval, dense (SiLU)", "silu",
                                 "prompt_tps"),
                                ("prompt eval, ReLU 90 % sparse", "relu",
                                 "prompt_tps")):
            cells = []
            for runner in ("llama.cpp", "PowerInfer", "pinferc run",
                           "executable"):
                col = []
                for ty in types:
                    base = get(ty, act, "llama.cpp", nt=nt)
                    r = get(ty, act, runner, nt=nt, key=key)
                    if r is None:
                        col.append("-")
                    elif base is None or runner == "llama.cpp":
                        col.append(f"{r[key]:.1f}")
                    else:
                        col.append(f"{r[key]:.1f} ({r[key] / base[key]:.2f}x)")
                cells.append(" / ".join(col))
            print(f"| {label} {'/'.join(types)} | " + " | ".join(cells) + " |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", default="build",
                    help="build directory with tools/pinferc/pinferc, "
                         "tools/genmodel/pinfer-genmodel, "
                         "bench/pinfer-bench-bandwidth (default: build)")
    ap.add_argument("--models-dir", help="where generated models go "
                    "(default: BUILD/bench-models)")
    ap.add_argument("--quick", action="store_true",
                    help="4 layers of the 1b shape, fewer runs (~2 min)")
    ap.add_argument("--types", default="f16,q8_0,q4_0")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--reps", type=int, help="runs per cell, median kept "
                    "(default 3, quick 2)")
    ap.add_argument("-n", "--gen", type=int, help="tokens to generate "
                    "(default 16, quick 8)")
    ap.add_argument("--modes", default="dense,exact,predicted",
                    help="modes for the ReLU models (SiLU is dense only)")
    ap.add_argument("--json", help="also write all results to this file")
    ap.add_argument("--no-llama-cpp", action="store_true",
                    help="leave out llama.cpp (default: run it on the same "
                    "weights when scripts/install-models.sh installed it)")
    ap.add_argument("--powerinfer-main", metavar="PATH",
                    help="PowerInfer's `main` (a CPU build of it): also run "
                    "it on each ReLU model's PowerInfer file")
    args = ap.parse_args()

    bd = os.path.abspath(args.build_dir)
    pinferc = os.path.join(bd, "tools/pinferc/pinferc")
    genmodel = os.path.join(bd, "tools/genmodel/pinfer-genmodel")
    probe = os.path.join(bd, "bench/pinfer-bench-bandwidth")
    for exe in (pinferc, genmodel, probe):
        if not os.access(exe, os.X_OK):
            sys.exit(f"bench/run.py: {exe}: not built, expected an executable "
                     f"(ninja -C {bd} pinferc pinfer-genmodel "
                     f"pinfer-bench-bandwidth)")
    reps = args.reps or (2 if args.quick else 3)
    gen = args.gen or (8 if args.quick else 16)
    threads = [int(t) for t in args.threads.split(",")]
    types = args.types.split(",")
    modes = args.modes.split(",")
    # Absolute paths: the runs go in temporary working directories.
    mdir = os.path.abspath(args.models_dir or os.path.join(bd, "bench-models"))
    if args.powerinfer_main:
        args.powerinfer_main = os.path.abspath(args.powerinfer_main)
    os.makedirs(mdir, exist_ok=True)
    shape = ["--preset", "1b"] + (["--n-layer", "4"] if args.quick else [])
    tag = "1b-4l" if args.quick else "1b"
    t_start = time.time()

    llama_py = None
    if not args.no_llama_cpp:
        py = os.path.join(cache_dir(), "venv", "bin", "python")
        if os.access(py, os.X_OK) and run_child(
                [py, "-c", "import llama_cpp"], 60)[0] == 0:
            llama_py = py
        else:
            print("bench/run.py: llama.cpp left out: scripts/install-models.sh "
                  "has not installed llama-cpp-python", file=sys.stderr)
    if args.powerinfer_main and not os.access(args.powerinfer_main, os.X_OK):
        sys.exit(f"bench/run.py: {args.powerinfer_main}: not an executable")

    def generate(path, ty, act, extra):
        if os.path.exists(path):
            return
        cmd = [genmodel, *shape, "--type", ty, "--activation", act,
               "--active-fraction", "0.10", *extra, "-o", path + ".tmp"]
        print(f"generating {os.path.basename(path)} ...", flush=True)
        rc, out, err, _ = run_child(cmd, 1800)
        if rc != 0:
            sys.exit(f"bench/run.py: {' '.join(cmd)}: exit {rc}: "
                     f"{err.strip().splitlines()[-1:]}")
        os.replace(path + ".tmp", path)

    # Models, generated once and reused. The ReLU model is a PowerInfer file
    # with ffn_down kept beside ffn_down_t (quantised downs are then packed
    # at their own size); llama.cpp reads its plain twin and PowerInfer its
    # own layout (ffn_down_t only), both of the same seed and weights.
    models, twins, pwri = [], {}, {}
    for ty in types:
        for act in ("silu", "relu"):
            path = os.path.join(mdir, f"{tag}-{ty}-{act}.gguf")
            generate(path, ty, act, ["--powerinfer", "--with-ffn-down"]
                     if act == "relu" else [])
            if act == "relu" and llama_py:
                twins[path] = path[:-5] + "-plain.gguf"
                generate(twins[path], ty, act, [])
            if act == "relu" and args.powerinfer_main:
                pwri[path] = path[:-5] + "-powerinfer.gguf"
                generate(pwri[path], ty, act, ["--powerinfer"])
            models.append((ty, act, path))

    # Bandwidth, measured now, under the same load as the runs.
    rc, out, err, _ = run_child([probe, "--json", "--threads",
                                 ",".join(map(str, threads)), "--mib", "1024"],
                                300)
    bw = {int(k): v for k, v in json.loads(out)["read_gbps"].items()}

    # Compile the sparse executables where the compiler can.
    exes = {}
    for ty, act, path in models:
        if act != "relu":
            continue
        for mode in modes:
            exe = path[:-5] + f".{mode}.cpu"
            # Rebuilt when the compiler or the model is newer than it.
            if (not os.path.exists(exe) or os.path.getmtime(exe) <
                    max(os.path.getmtime(pinferc), os.path.getmtime(path))):
                cmd = [pinferc, path, "--target", "cpu", "--sparsity", mode,
                       "-q", "-o", exe]
                rc, out, err, _ = run_child(cmd, 600)
                if rc != 0:
                    msg = (err.strip().splitlines() or ["?"])[-1]
                    exes[(path, mode)] = (None, msg[:100])
                    continue
            exes[(path, mode)] = (exe, None)

    # Every cell's command and how to read its timings; run in interleaved
    # rounds (each cell once per round) so that the machine's noise falls
    # on all runners alike.
    cells = []
    for ty, act, path in models:
        tensors, _ = _read_gguf_tensors(path)
        kinds = [("dense", "ref")] if "dense" in modes else []
        if act == "relu":
            kinds += [(m, "exe") for m in modes]
        if llama_py:
            kinds.append(("dense", "llama.cpp"))
        if act == "relu" and args.powerinfer_main:
            kinds.append(("sparse", "PowerInfer"))
        for mode, kind in kinds:
            for nt in threads:
                cell = dict(type=ty, act=act, mode=mode, threads=nt,
                            tensors=tensors, pp=[], tg=[], rss=[], sp=None,
                            frac=None, counted=None)
                if kind == "ref":
                    cell.update(runner="pinferc run", cmd=[pinferc, "run", path])
                elif kind == "exe":
                    exe, why = exes.get((path, mode), (None, "not compiled"))
                    if exe is None:
                        cell["skipped"] = why
                    cell.update(runner="executable", cmd=[exe])
                elif kind == "llama.cpp":
                    # llama.cpp cannot read PowerInfer's extras: the ReLU
                    # model's plain twin (same seed, same weights). Its
                    # llama architecture runs SiLU whatever the file says:
                    # a dense token of the same bytes.
                    src = twins.get(path, path)
                    cell.update(runner="llama.cpp", parse="llama.cpp",
                                cmd=[llama_py, "-c", LLAMA_CPP, src, PROMPT,
                                     str(gen), str(nt)])
                    cells.append(cell)
                    continue
                else:
                    cell.update(runner="PowerInfer", parse="powerinfer",
                                cmd=[args.powerinfer_main, "-m",
                                     pwri[path], "-p", PROMPT, "-n", str(gen),
                                     "-t", str(nt), "--temp", "0", "-c", "512",
                                     "--ignore-eos"])
                    cells.append(cell)
                    continue
                cell["cmd"] = cell["cmd"] + ["-p", PROMPT, "-n", str(gen),
                                             "-t", str(nt), "--temp", "0",
                                             "--json"]
                cells.append(cell)

    for rep in range(reps):
        for c in cells:
            if "skipped" in c:
                continue
            # (PowerInfer writes a log file where it runs.)
            with tempfile.TemporaryDirectory() as where:
                rc, out, err, peak = run_child(c["cmd"], 600, cwd=where)
            t = parse_timings(c.get("parse"), rc, out, err)
            if isinstance(t, str):
                c["skipped"] = t
                continue
            c["pp"].append(t["prompt_tps"])
            c["tg"].append(t["gen_tps"])
            c["rss"].append(peak)
            js = t.get("json") or {}
            if "sparsity" in js:
                c["sp"] = js["sparsity"]
            if "cpu_weight_bytes_per_token" in js:
                c["counted"] = js["cpu_weight_bytes_per_token"] + \
                    js.get("gpu_weight_bytes_per_token", 0)
            if "layers" in js:
                frac, n_ff = {}, None
                for L in js["layers"]:
                    tok = max(L.get("tokens", 0), 1)
                    comp = L.get("neurons_computed_cpu", 0) + \
                        L.get("neurons_computed_gpu", 0)
                    if n_ff is None:
                        n_ff = c["tensors"][
                            f"blk.{L['layer']}.ffn_up.weight"][1][-1]
                    frac[L["layer"]] = comp / (tok * n_ff)
                c["frac"] = frac
        print(f"  round {rep + 1} of {reps} done "
              f"({time.time() - t_start:.0f} s)", file=sys.stderr, flush=True)

    rows = []
    for c in cells:
        base = dict(type=c["type"], act=c["act"], mode=c["mode"],
                    threads=c["threads"], runner=c["runner"])
        if "skipped" in c or not c["tg"]:
            rows.append(dict(base, skipped=c.get("skipped", "no run")))
            continue
        # The executable counts what it read; the reference and llama.cpp
        # read every matrix; PowerInfer's share is not known from outside.
        if c["runner"] == "PowerInfer":
            bpt = None
        else:
            bpt = c["counted"] or weight_bytes(c["tensors"], c["mode"],
                                               c["frac"])
        g = statistics.median(c["tg"])
        rows.append(dict(
            base, prompt_tps=statistics.median(c["pp"]), gen_tps=g,
            bytes_per_token=bpt, gbps=bpt * g / 1e9 if bpt else None,
            ratio=bpt * g / 1e9 / bw[c["threads"]] if bpt else None,
            peak_rss_mib=max(c["rss"]), sparsity=c["sp"]))

    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    print(f"\nmachine: {cpu}, {os.cpu_count()} cores; read bandwidth "
          + ", ".join(f"{bw[t]:.2f} GB/s @{t}t" for t in threads)
          + f"; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          f"shape {tag}, {gen} tokens, median of {reps}")
    hdr = ("| type | act | mode | thr | runner | prompt tok/s | gen tok/s | "
           "MB/token | GB/s | of bw | peak RSS MiB | sparsity |")
    print(hdr)
    print("|" + "---|" * 12)
    for r in rows:
        if "skipped" in r:
            print(f"| {r['type']} | {r['act']} | {r['mode']} | {r['threads']} "
                  f"| {r['runner']} | skipped: {r['skipped']} ||||||")
            continue
        sp = f"{r['sparsity']:.3f}" if r["sparsity"] is not None else "-"
        mb, gbs, of = "-", "-", "-"
        if r["bytes_per_token"]:
            mb = f"{r['bytes_per_token'] / 1e6:.0f}"
            gbs, of = f"{r['gbps']:.2f}", f"{r['ratio'] * 100:.0f}%"
        print(f"| {r['type']} | {r['act']} | {r['mode']} | {r['threads']} | "
              f"{r['runner']} | {r['prompt_tps']:.2f} | {r['gen_tps']:.2f} | "
              f"{mb} | {gbs} | {of} | {r['peak_rss_mib']:.0f} | {sp} |")
    if llama_py:
        print_ratios(rows, types, threads)
    print(f"\ntotal {time.time() - t_start:.0f} s", file=sys.stderr)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(cpu=cpu, bandwidth_gbps=bw, rows=rows), f, indent=1)


if __name__ == "__main__":
    main()
