#!/usr/bin/env python3
"""The checks to run on a machine with a GPU (bench/gpu-check.sh runs this
after the GPU unit tests): compiled executables against the dense reference,
and a decode speed table.

For each model shape (generated, LLaMA-shaped ReLU with planted sparsity,
PowerInfer layout so that predicted mode has predictors) and each VRAM
budget (the card's whole VRAM; 30 %, 100 % and 50 % of the model's file
size, plus the target's reserve and scratch; and 0: the CPU alone), the
main job compiles an
executable per sparsity mode (one budget's side by side), runs it greedily
and reports:

  whether its tokens equal the dense reference's (`pinferc run`, CPU),
  decode tokens/s, the weight bytes it read per token on each device (its
  own --json counts), the achieved GPU bandwidth (GPU bytes/token x
  tokens/s) and its ratio to the card's (the target table's GB/s),
  the speed-up over the CPU-only dense executable, where attention ran, and
  for executables that decode each token as one CUDA graph launch, their
  speed over the same run with the kernels launched one by one
  (PINFER_CUDA_GRAPHS=0: 'graphs'), and the prompt speed on a 256-token
  prompt ('prompt/s') with its ratio to the same prompt token by token
  (-b 1: 'chunked') and to the same chunks without the tensor-core tiles
  (PINFER_GPU_TILES=0: 'tiles'), and for rows that ran on the GPU the buffer guards
  a 4-token run under --gpu-sync-debug checked after its launches
  ('guards'; a kernel that wrote past a buffer fails the row).

Rows stop at --deadline seconds (default 270) so the whole check stays under
5 minutes on one GPU; rows left out are listed. With --standin the same runs
go through the test-only libcuda stand-in (kernels built as host C++), to
check this script on a machine without a GPU: speeds are then meaningless.
"""

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import time

PROMPT = "Once upon a time there was a little girl who lived in a village"
# About 256 tokens: the prompt speed of whole-GPU programs ('prompt/s').
LONG_PROMPT = " ".join([PROMPT] * 16)
# Scored by the reference and by each executable: greedy tokens of a
# random-weight model can part on a near tie after a few dozen tokens from
# a mere change of summation order, so an executable whose tokens differ
# must still give the reference's perplexity within PPL_TOLERANCE.
PPL_TEXT = ("The old lighthouse keeper climbed the stairs every evening, "
            "counting each step as his father had taught him. From the top "
            "he could see the fishing boats returning to the harbour, their "
            "lamps swaying over the dark water, and the lights of the village "
            "coming on one by one along the hill. ") * 2
PPL_CTX = 64
PPL_TOLERANCE = 0.01


def perplexity(cmd, env=None):
    """The perplexity `cmd` (a --perplexity/perplexity command line without
    its --json) prints, or None."""
    rc, out, _ = run(cmd + ["--json"], env=env)
    try:
        return json.loads(out)["perplexity"] if rc == 0 else None
    except (ValueError, KeyError):
        return None


def run(cmd, env=None, timeout=600):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env,
                       timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def target_row(pinferc, target):
    """(VRAM GiB, GB/s, reserve MiB) of `target` from `pinferc targets`."""
    rc, out, err = run([pinferc, "targets"])
    for line in out.splitlines():
        f = line.split()
        if f and f[0] == target and f[1] != "-":
            return float(f[2]), float(f[4]), float(f[8])
    sys.exit(f"gpu_check: no GPU target '{target}' in `pinferc targets`")


def detect_target():
    """The target table's row for the GPU nvidia-smi names, else rtx4090."""
    try:
        rc, out, _ = run(["nvidia-smi", "--query-gpu=name",
                          "--format=csv,noheader"])
    except (OSError, subprocess.TimeoutExpired):
        return "rtx4090"
    name = out.lower()
    for key, target in (("h200", "h200"), ("h100", "h100"), ("a100", "a100-40g"),
                        ("4090", "rtx4090"), ("3090", "rtx3090"),
                        ("2080", "rtx2080ti")):
        if key in name:
            return target
    return "rtx4090"


HEADER = (f"{'model':10} {'budget':>6} {'mode':9} {'GPU':>3} {'attn':>4} "
          f"{'tok/s':>8} {'GPU MiB/t':>9} {'CPU MiB/t':>9} {'GPU GB/s':>8} "
          f"{'of card':>7} {'x CPU':>6} {'=ref':>6} {'ppl diff':>8} "
          f"{'graphs':>6} {'prompt/s':>8} {'chunked':>7} {'tiles':>5} "
          f"{'bill MiB':>8} {'taken MiB':>9} {'guards':>7}")


def format_row(r, card_gbs, rows):
    """One line of the table; 'x CPU' is the speed-up over the same model
    compiled for the CPU alone, dense (where that row exists)."""
    if "note" in r:
        return f"{r['model']:10} {r['budget']:>6} {r['mode']:9} failed: {r['note']}"
    base = next((x["tps"] for x in rows if x["model"] == r["model"] and
                 x["budget"] == "CPU" and x["mode"] == "dense" and
                 x.get("tps")), 0)
    speedup = f"{r['tps'] / base:5.2f}x" if base else f"{'-':>6}"
    return (f"{r['model']:10} {r['budget']:>6} {r['mode']:9} "
            f"{'yes' if r['gpu'] else 'no':>3} {r['attn']:>4} "
            f"{r['tps']:8.1f} {r['gpu_mib']:9.1f} {r['cpu_mib']:9.1f} "
            f"{r['gbs']:8.1f} {100 * r['gbs'] / card_gbs:6.1f}% "
            f"{speedup} {r['same']:>6} "
            + (f"{100 * r['dppl']:7.3f}%" if r.get("dppl") is not None
               else f"{'-':>8}")
            + (f" {r['graph_x']:5.2f}x" if r.get("graph_x") else f" {'-':>6}")
            + (f" {r['prompt_tps']:8.1f} {r['chunk_x']:6.2f}x"
               if r.get("prompt_tps") and r.get("chunk_x") else
               f" {'-':>8} {'-':>7}")
            + (f" {r['tiles_x']:4.2f}x" if r.get("tiles_x") else f" {'-':>5}")
            # The VRAM the plan bills at the run's -c, and what the driver
            # says the executable took (the bill in its pages, the GPU code).
            + (f" {r['bill_mib']:8.1f} {r['taken_mib']:9.1f}"
               if r.get("bill_mib") else f" {'-':>8} {'-':>9}")
            + (f" {r['guards']:7d}" if r.get("guards") is not None
               else f" {'-':>7}"))


def compile_row(cmd, exe, standin, env):
    """Compiles one executable (and, through the stand-in, its host-built
    kernels); '' or the last line of the failure."""
    rc, _, err = run(cmd + ["-o", exe], env=env)
    if rc:
        return err.strip().splitlines()[-1][:60]
    if standin:
        rc, cu, err = run(cmd + ["--emit=cuda"], env=env)
        with open(exe + ".cu", "w") as f:
            f.write(cu)
        here = os.path.dirname(os.path.abspath(__file__))
        run(["bash", f"{here}/../test/cuda_host/build-host-kernels.sh",
             exe + ".cu", exe + ".so"])
    return ""


def remove_exe(exe):
    for f in (exe, exe + ".weights.gguf", exe + ".so", exe + ".cu"):
        if os.path.exists(f):
            os.remove(f)


def wait_for(pid):
    """Waits for another process (the GPU tests) to end, so that timings do
    not share the GPU with it."""
    while pid:
        try:
            os.kill(pid, 0)
        except OSError:
            return
        time.sleep(0.2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--kit", default=os.environ.get("PINFER_KIT", ""),
                    help="a bench/pack-gpu-kit.sh kit instead of the build")
    ap.add_argument("--work", default="", help="default: BUILD/gpu-check")
    ap.add_argument("--target", default="", help="default: from nvidia-smi")
    ap.add_argument("--models", default="1b:q4_0,7b:q4_0",
                    help="preset:type list (genmodel presets and types)")
    ap.add_argument("--budgets", default="card,30,0,100,50",
                    help="percent of the model's size; card: the target's "
                    "whole VRAM; 0: the CPU alone")
    ap.add_argument("--modes", default="dense,exact,predicted")
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--profile-tokens", type=int, default=128)
    ap.add_argument("--deadline", type=float, default=270)
    ap.add_argument("--wait-pid", type=int, default=0,
                    help="before the first timed run, wait for this process")
    ap.add_argument("--clean", action="store_true",
                    help="remove each model once its rows are done")
    ap.add_argument("--json-out", default="", help="also write the rows here")
    ap.add_argument("--standin", action="store_true",
                    help="run through the libcuda stand-in (no GPU)")
    args = ap.parse_args()
    start = time.time()
    b = os.path.abspath(args.build_dir)
    if args.kit:
        pinferc = f"{args.kit}/bin/pinferc"
        genmodel = f"{args.kit}/bin/pinfer-genmodel"
    else:
        pinferc = f"{b}/tools/pinferc/pinferc"
        genmodel = f"{b}/tools/genmodel/pinfer-genmodel"
    target = args.target or detect_target()
    vram_gib, card_gbs, reserve_mib = target_row(pinferc, target)
    work = os.path.abspath(args.work or f"{b}/gpu-check")
    os.makedirs(work, exist_ok=True)
    env = dict(os.environ)
    lib_path = []
    if args.kit:
        # Executables link and load the kit's HTTP library.
        env["LIBRARY_PATH"] = f"{args.kit}/lib/http"
        lib_path.append(f"{args.kit}/lib/http")
    if args.standin:
        lib_path.append(f"{b}/test/cuda_host/standin")
    if lib_path:
        env["LD_LIBRARY_PATH"] = ":".join(lib_path)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), "unknown CPU")
    print(f"target {target} ({card_gbs:.0f} GB/s, {vram_gib:.0f} GiB); "
          f"CPU {cpu}, {os.cpu_count()} threads"
          + ("; through the stand-in (speeds meaningless)" if args.standin
             else ""), flush=True)
    rows, skipped = [], []
    profiled = set()  # models whose kernels were timed
    for spec in args.models.split(","):
        preset, wtype = spec.split(":")
        model = f"{work}/{preset}-{wtype}.gguf"
        if not os.path.exists(model):
            # Block types other than q8_0/q4_0 keep ffn_down beside
            # PowerInfer's transpose: their packed down rows are then
            # SplitK's, as for a llama.cpp file (from the transpose alone
            # they would be decoded to f32).
            keep = [] if wtype in ("f32", "f16", "bf16", "q8_0", "q4_0") \
                else ["--with-ffn-down"]
            rc, _, err = run([genmodel, "--preset", preset, "--type", wtype,
                              "--powerinfer", *keep, "-o", model])
            if rc:
                sys.exit(f"gpu_check: genmodel failed: {err.strip()}")
        trace = model + ".trace"
        if not os.path.exists(trace):
            rc, _, err = run([pinferc, "profile", model, "--tokens",
                              str(args.profile_tokens), "-o", trace,
                              "--force"])
            if rc:
                sys.exit(f"gpu_check: profile failed: {err.strip()}")
        rc, out, err = run([pinferc, "run", model, "-p", PROMPT, "-n",
                            str(args.tokens), "--temp", "0", "--json"])
        reference = json.loads(out)["tokens"] if rc == 0 else None
        ppl_file = f"{work}/ppl.txt"
        with open(ppl_file, "w") as f:
            f.write(PPL_TEXT)
        ref_ppl = perplexity([pinferc, "perplexity", model, "-f", ppl_file,
                              "-c", str(PPL_CTX)])
        print(f"{preset} {wtype}: model, trace and reference ready at "
              f"{time.time() - start:.0f} s", flush=True)
        size = os.path.getsize(model)
        for spec_budget in args.budgets.split(","):
            # card: the target's whole VRAM; 0: the same model compiled for
            # the CPU alone, the baseline of the speed-up column.
            pct = -1 if spec_budget == "card" else int(spec_budget)
            budget_mib = int(size * pct / 100 / 2**20 + reserve_mib + 256)
            where = (["--target", "cpu"] if pct == 0 else
                     ["--target", target] if pct < 0 else
                     ["--target", target, "--vram-budget", f"{budget_mib}MiB"])
            batch = []
            for mode in args.modes.split(","):
                row = dict(model=f"{preset} {wtype}",
                           budget="card" if pct < 0 else
                           f"{pct}%" if pct else "CPU", mode=mode)
                if time.time() - start > args.deadline:
                    skipped.append(row)
                    continue
                exe = f"{work}/{preset}-{wtype}-{spec_budget}-{mode}"
                cmd = [pinferc, model, "--trace", trace] + where + [
                    "--sparsity", mode, "-q"]
                batch.append((row, exe, cmd))
            # One budget's executables compile side by side (each writes
            # its packed weights: a whole batch of 7B ones fills tens of
            # GB, so batches stay one budget wide and are removed after
            # their runs).
            with concurrent.futures.ThreadPoolExecutor(len(batch) or 1) as ex:
                notes = list(ex.map(
                    lambda r: compile_row(r[2], r[1], args.standin, env), batch))
            wait_for(args.wait_pid)
            for (row, exe, cmd), note in zip(batch, notes):
                rows.append(row)
                if note:
                    row["note"] = note
                    continue
                if args.standin:
                    env["PINFER_CUDA_STANDIN_KERNELS"] = exe + ".so"
                rc, out, err = run([exe, "-p", PROMPT, "-n",
                                    str(args.tokens), "--temp", "0", "--json",
                                    "--verbose"], env=env)
                if rc:
                    remove_exe(exe)
                    row["note"] = err.strip().splitlines()[-1][:60]
                    print(f"{row['model']} {row['budget']} {row['mode']} "
                          f"failed:\n  " + "\n  ".join(
                              err.strip().splitlines()[-5:]), flush=True)
                    continue
                j = json.loads(out)
                tps = j.get("timings", {}).get("gen_tokens_per_s", 0.0)
                # Decoded as CUDA graphs: the same run with the kernels
                # launched one by one, for the graphs' share ('graphs').
                graph_x = None
                if j.get("gpu_graph_launches", 0) > 0:
                    rc0, out0, _ = run([exe, "-p", PROMPT, "-n",
                                        str(args.tokens), "--temp", "0",
                                        "--json"],
                                       env=dict(env, PINFER_CUDA_GRAPHS="0"))
                    tps0 = (json.loads(out0).get("timings", {})
                            .get("gen_tokens_per_s", 0.0) if rc0 == 0 else 0)
                    graph_x = tps / tps0 if tps0 else None
                # Whole-GPU programs evaluate prompts in chunks: a long
                # prompt's speed, and its ratio to token by token (-b 1).
                # And in chunks without the tensor-core tiles ('tiles').
                prompt_tps = chunk_x = tiles_x = None
                if j.get("gpu_graph_launches", 0) > 0:
                    speeds = []
                    for batch, tiles in (("32", "1"), ("1", "1"),
                                         ("32", "0")):
                        rc1, out1, _ = run([exe, "-p", LONG_PROMPT, "-n", "1",
                                            "--temp", "0", "--json", "-b",
                                            batch],
                                           env=dict(env,
                                                    PINFER_GPU_TILES=tiles))
                        speeds.append(json.loads(out1).get("timings", {})
                                      .get("prompt_tokens_per_s", 0.0)
                                      if rc1 == 0 else 0.0)
                    prompt_tps = speeds[0]
                    chunk_x = speeds[0] / speeds[1] if speeds[1] else None
                    tiles_x = speeds[0] / speeds[2] if speeds[2] else None
                # Each model's first whole-GPU row once more with
                # --gpu-profile: the kernels' own times, to read against
                # the card's bandwidth.
                if (j.get("gpu_graph_launches", 0) > 0
                        and row["model"] not in profiled):
                    profiled.add(row["model"])
                    rc2, _, err2 = run([exe, "-p", PROMPT, "-n",
                                        str(args.tokens), "--temp", "0",
                                        "--gpu-profile"], env=env)
                    lines = err2.splitlines()
                    at = next((i for i, l in enumerate(lines)
                               if "GPU kernels:" in l), None)
                    if rc2 == 0 and at is not None:
                        row["profile"] = lines[at:at + 12]
                        print(f"{row['model']} {row['budget']} {row['mode']}"
                              f" --gpu-profile (the 10 longest):\n  " +
                              "\n  ".join(row["profile"]), flush=True)
                # A few tokens under --gpu-sync-debug: a wait after each
                # launch, and the guards after the kernel's buffers read
                # back ('guards': how many were checked; a kernel that
                # wrote past a buffer fails the row with its line).
                guards = None
                if j.get("gpu_active", False):
                    rc3, out3, err3 = run([exe, "-p", PROMPT, "-n", "4",
                                           "--temp", "0", "--json",
                                           "--gpu-sync-debug"], env=env)
                    if rc3:
                        row["note"] = err3.strip().splitlines()[-1][:120]
                        print(f"{row['model']} {row['budget']} {row['mode']}"
                              f" --gpu-sync-debug failed:\n  "
                              + err3.strip().splitlines()[-1], flush=True)
                        remove_exe(exe)
                        continue
                    guards = json.loads(out3).get("gpu_guard_checks", 0)
                gpu_b = j.get("gpu_weight_bytes_per_token", 0.0)
                same = reference is not None and reference == j["tokens"]
                ppl = None
                if not same:
                    ppl = perplexity([exe, "--perplexity", ppl_file, "-c",
                                      str(PPL_CTX)], env=env)
                dppl = (abs(ppl / ref_ppl - 1) if ppl and ref_ppl else None)
                row.update(
                    tps=tps, gpu_mib=gpu_b / 2**20,
                    cpu_mib=j.get("cpu_weight_bytes_per_token", 0.0) / 2**20,
                    gbs=gpu_b * tps / 1e9,
                    attn="gpu" if "attention@gpu" in err else "cpu",
                    dppl=dppl,
                    # Predicted mode approximates: its perplexity may differ.
                    same="yes" if same else
                    "?" if dppl is None else
                    "ppl" if dppl <= PPL_TOLERANCE else
                    "no" if row["mode"] != "predicted" else "approx",
                    gpu=j.get("gpu_active", False), graph_x=graph_x,
                    prompt_tps=prompt_tps, chunk_x=chunk_x, tiles_x=tiles_x,
                    bill_mib=j.get("vram_bill_bytes", 0) / 2**20,
                    taken_mib=j.get("vram_taken_bytes", 0) / 2**20,
                    guards=guards)
                remove_exe(exe)
                print(format_row(row, card_gbs, rows), flush=True)
        if args.clean:
            for f in (model, trace):
                os.remove(f)
    print(f"\n{HEADER}")
    for r in rows:
        print(format_row(r, card_gbs, rows))
    for r in skipped:
        print(f"{r['model']:10} {r['budget']:>6} {r['mode']:9} "
              f"skipped: past --deadline {args.deadline:.0f} s")
    print(f"\n{time.time() - start:.0f} s")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(dict(target=target, cpu=cpu, card_gbs=card_gbs,
                           rows=rows, skipped=skipped), f, indent=1)
    print("=ref: yes, the dense reference's greedy tokens; ppl, other tokens "
          f"but its perplexity within {100 * PPL_TOLERANCE:g} %; approx, "
          "predicted mode further off; no, a failure")
    bad = [r for r in rows if "note" in r or r.get("same") in ("no", "?")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
