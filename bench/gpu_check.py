#!/usr/bin/env python3
"""The checks to run on a machine with a GPU (bench/gpu-check.sh runs this
after the GPU unit tests): compiled executables against the dense reference,
and a decode speed table.

For each model shape (generated, LLaMA-shaped ReLU with planted sparsity,
PowerInfer layout so that predicted mode has predictors) and each VRAM
budget (100 %, 50 % and 30 % of the model's file size, plus the target's
reserve and scratch), the main job compiles an executable per sparsity mode,
runs it greedily and reports:

  whether its tokens equal the dense reference's (`pinferc run`, CPU),
  decode tokens/s, the weight bytes it read per token on each device (its
  own --json counts), the achieved GPU bandwidth (GPU bytes/token x
  tokens/s) and its ratio to the card's (the target table's GB/s),
  and where attention ran.

Rows stop at --deadline seconds (default 270) so the whole check stays under
5 minutes on one GPU; rows left out are listed. With --standin the same runs
go through the test-only libcuda stand-in (kernels built as host C++), to
check this script on a machine without a GPU: speeds are then meaningless.
"""

import argparse
import json
import os
import subprocess
import sys
import time

PROMPT = "Once upon a time there was a little girl who lived in a village"


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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--target", default="", help="default: from nvidia-smi")
    ap.add_argument("--models", default="1b:q4_0,7b:q4_0",
                    help="preset:type list (genmodel presets and types)")
    ap.add_argument("--budgets", default="100,50,30")
    ap.add_argument("--modes", default="dense,exact,predicted")
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--deadline", type=float, default=270)
    ap.add_argument("--standin", action="store_true",
                    help="run through the libcuda stand-in (no GPU)")
    args = ap.parse_args()
    start = time.time()
    b = os.path.abspath(args.build_dir)
    pinferc = f"{b}/tools/pinferc/pinferc"
    genmodel = f"{b}/tools/genmodel/pinfer-genmodel"
    target = args.target or detect_target()
    vram_gib, card_gbs, reserve_mib = target_row(pinferc, target)
    work = f"{b}/gpu-check"
    os.makedirs(work, exist_ok=True)
    env = dict(os.environ)
    if args.standin:
        env["LD_LIBRARY_PATH"] = f"{b}/test/cuda_host/standin"
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), "unknown CPU")
    print(f"target {target} ({card_gbs:.0f} GB/s, {vram_gib:.0f} GiB); "
          f"CPU {cpu}, {os.cpu_count()} threads"
          + ("; through the stand-in (speeds meaningless)" if args.standin
             else ""))
    rows, skipped = [], []
    for spec in args.models.split(","):
        preset, wtype = spec.split(":")
        model = f"{work}/{preset}-{wtype}.gguf"
        if not os.path.exists(model):
            rc, _, err = run([genmodel, "--preset", preset, "--type", wtype,
                              "--powerinfer", "-o", model])
            if rc:
                sys.exit(f"gpu_check: genmodel failed: {err.strip()}")
        trace = model + ".trace"
        if not os.path.exists(trace):
            rc, _, err = run([pinferc, "profile", model, "--tokens", "256",
                              "-o", trace, "--force"])
            if rc:
                sys.exit(f"gpu_check: profile failed: {err.strip()}")
        rc, out, err = run([pinferc, "run", model, "-p", PROMPT, "-n",
                            str(args.tokens), "--temp", "0", "--json"])
        reference = json.loads(out)["tokens"] if rc == 0 else None
        size = os.path.getsize(model)
        for pct in [int(x) for x in args.budgets.split(",")]:
            budget_mib = int(size * pct / 100 / 2**20 + reserve_mib + 256)
            for mode in args.modes.split(","):
                row = dict(model=f"{preset} {wtype}", budget=f"{pct}%",
                           mode=mode)
                if time.time() - start > args.deadline:
                    skipped.append(row)
                    continue
                exe = f"{work}/{preset}-{wtype}-{pct}-{mode}"
                cmd = [pinferc, model, "--trace", trace, "--target", target,
                       "--vram-budget", f"{budget_mib}MiB", "--sparsity", mode,
                       "-q", "-o", exe]
                rc, _, err = run(cmd)
                if rc:
                    row["note"] = err.strip().splitlines()[-1][:60]
                    rows.append(row)
                    continue
                if args.standin:
                    rc, cu, err = run(cmd[:-2] + ["--emit=cuda"])
                    with open(exe + ".cu", "w") as f:
                        f.write(cu)
                    here = os.path.dirname(os.path.abspath(__file__))
                    run(["bash", f"{here}/../test/cuda_host/build-host-kernels.sh",
                         exe + ".cu", exe + ".so"])
                    env["PINFER_CUDA_STANDIN_KERNELS"] = exe + ".so"
                rc, out, err = run([exe, "-p", PROMPT, "-n", str(args.tokens),
                                    "--temp", "0", "--json", "--verbose"],
                                   env=env)
                if rc:
                    row["note"] = err.strip().splitlines()[-1][:60]
                    rows.append(row)
                    continue
                j = json.loads(out)
                tps = j.get("timings", {}).get("gen_tokens_per_s", 0.0)
                gpu_b = j.get("gpu_weight_bytes_per_token", 0.0)
                row.update(
                    tps=tps, gpu_mib=gpu_b / 2**20,
                    cpu_mib=j.get("cpu_weight_bytes_per_token", 0.0) / 2**20,
                    gbs=gpu_b * tps / 1e9,
                    attn="gpu" if "attention@gpu" in err else "cpu",
                    # Predicted mode approximates: its tokens may differ.
                    same=("yes" if reference == j["tokens"] else
                          "no" if mode != "predicted" else "diff")
                    if reference else "?",
                    gpu=j.get("gpu_active", False))
                rows.append(row)
    print(f"\n{'model':10} {'budget':>6} {'mode':9} {'GPU':>3} {'attn':>4} "
          f"{'tok/s':>8} {'GPU MiB/t':>9} {'CPU MiB/t':>9} {'GPU GB/s':>8} "
          f"{'of card':>7} {'=ref':>4}")
    for r in rows:
        if "note" in r:
            print(f"{r['model']:10} {r['budget']:>6} {r['mode']:9} "
                  f"failed: {r['note']}")
            continue
        print(f"{r['model']:10} {r['budget']:>6} {r['mode']:9} "
              f"{'yes' if r['gpu'] else 'no':>3} {r['attn']:>4} "
              f"{r['tps']:8.1f} {r['gpu_mib']:9.1f} {r['cpu_mib']:9.1f} "
              f"{r['gbs']:8.1f} {100 * r['gbs'] / card_gbs:6.1f}% "
              f"{r['same']:>4}")
    for r in skipped:
        print(f"{r['model']:10} {r['budget']:>6} {r['mode']:9} "
              f"skipped: past --deadline {args.deadline:.0f} s")
    print(f"\n{time.time() - start:.0f} s")
    bad = [r for r in rows if "note" in r or r.get("same") == "no"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
