#!/usr/bin/env python3
"""pinferc's dense reference against llama.cpp on a real trained model.

Usage: llama_cpp_oracle.py PINFERC MODEL.gguf TEXT_FILE [--chunks N] [--ctx C]

llama.cpp comes from PyPI's llama-cpp-python (scripts/install-models.sh puts
it and the model under the cache directory); run this script with that
environment's python. It checks, on the same text:
  1. tokenisation: `pinferc tokenize` gives llama.cpp's tokens;
  2. perplexity: `pinferc perplexity` and llama.cpp, scoring the same tokens
     of the same chunks (BOS first, the first quarter of each chunk not
     scored, as runtime/perplexity.cpp does), agree within --tolerance
     (relative, on the mean negative log-likelihood);
  3. next-token choice: at every scored position the two argmax tokens agree
     at least --min-agreement of the time (llama.cpp multiplies 8-bit
     quantised activations, pinferc f32 ones, so near-ties may differ).
Exits 77 (a skip for ctest) when llama_cpp or the model is absent.
"""
import argparse
import json
import math
import os
import subprocess
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pinferc")
    ap.add_argument("model")
    ap.add_argument("text")
    ap.add_argument("--chunks", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=128)
    ap.add_argument("--tolerance", type=float, default=0.02)
    ap.add_argument("--min-agreement", type=float, default=0.9)
    ap.add_argument("--chars", type=int, default=4000)
    args = ap.parse_args()

    try:
        import llama_cpp  # noqa: F401
        import numpy as np
    except ImportError:
        print("skipped: llama_cpp is not installed "
              "(bash scripts/install-models.sh)")
        return 77
    if not os.path.exists(args.model):
        print(f"skipped: {args.model} is absent (bash scripts/install-models.sh)")
        return 77

    with open(args.text, encoding="utf-8") as f:
        text = f.read()[: args.chars]
    text_file = os.path.join(os.environ.get("TMPDIR", "/tmp"),
                             f"oracle-text-{os.getpid()}.txt")
    with open(text_file, "w", encoding="utf-8") as f:
        f.write(text)
    try:
        return compare(args, text, text_file)
    finally:
        os.unlink(text_file)


def compare(args, text, text_file):
    import llama_cpp
    import numpy as np

    llm = llama_cpp.Llama(model_path=args.model, n_ctx=args.ctx,
                          n_batch=args.ctx, logits_all=True, verbose=False,
                          n_threads=os.cpu_count())
    theirs = llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
    out = subprocess.run([args.pinferc, "tokenize", args.model, "--ids",
                          "--no-bos", "-p", text],
                         capture_output=True, text=True, check=True)
    ours = json.loads(out.stdout)
    if ours != theirs:
        i = next((k for k, (a, b) in enumerate(zip(ours, theirs)) if a != b),
                 min(len(ours), len(theirs)))
        print(f"FAIL tokenize: {len(ours)} tokens vs llama.cpp's {len(theirs)};"
              f" first difference at {i}: {ours[i:i+5]} vs {theirs[i:i+5]}")
        return 1
    print(f"tokenize: {len(ours)} tokens, equal to llama.cpp's")

    # llama.cpp's side of runtime/perplexity.cpp's protocol.
    bos = llm.token_bos()
    per_chunk = args.ctx - 1
    skip = max(1, args.ctx // 4)
    nll, scored, agree, chunks = 0.0, 0, 0, 0
    argmax_theirs = []
    for begin in range(0, len(ours) - 1, per_chunk):
        if chunks == args.chunks:
            break
        end = min(len(ours), begin + per_chunk)
        seq = [bos] + ours[begin:end]
        llm.reset()
        llm.eval(seq)
        logits = np.array(llm.scores[: len(seq)], dtype=np.float64)
        for pos in range(len(seq) - 1):
            i = begin + pos - 1  # the token at this position (pos 0: BOS)
            if pos < skip or i + 1 >= end:
                continue
            row = logits[pos]
            m = row.max()
            lse = m + math.log(np.exp(row - m).sum())
            nll -= row[ours[i + 1]] - lse
            scored += 1
            argmax_theirs.append(int(row.argmax()))
        chunks += 1
    theirs_nll = nll / scored

    out = subprocess.run([args.pinferc, "perplexity", args.model, "-f",
                          text_file, "-c", str(args.ctx), "--chunks",
                          str(args.chunks), "--json", "--argmax"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        print("FAIL pinferc perplexity: " + out.stderr.strip())
        return 1
    r = json.loads(out.stdout)
    ours_nll = r["mean_nll"]
    if r["scored_tokens"] != scored:
        print(f"FAIL perplexity: pinferc scored {r['scored_tokens']} tokens, "
              f"llama.cpp {scored}")
        return 1
    agree = sum(a == b for a, b in zip(r["argmax"], argmax_theirs))
    rel = abs(ours_nll - theirs_nll) / theirs_nll
    print(f"perplexity: pinferc {math.exp(ours_nll):.4f}, llama.cpp "
          f"{math.exp(theirs_nll):.4f} over {scored} tokens in {chunks} chunks "
          f"of {args.ctx} (mean NLL {ours_nll:.5f} vs {theirs_nll:.5f}, "
          f"{100 * rel:.2f} % apart)")
    print(f"next-token argmax: {agree} of {scored} equal "
          f"({100 * agree / scored:.1f} %)")
    ok = rel <= args.tolerance and agree >= args.min_agreement * scored
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
