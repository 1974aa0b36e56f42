"""What the benchmarks share to run llama.cpp: the cache directory that
scripts/install-models.sh fills, and the program that times one greedy
completion through PyPI's llama-cpp-python (run by that venv's python)."""

import os

# llama.cpp's own counters (llama_perf_context: prompt evaluation and
# generation), so no Python sampling time is in them.
LLAMA_CPP = r"""
import json, sys, llama_cpp
path, prompt, n, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
# 512 positions, or what a long prompt needs (never fewer tokens than a
# third of its characters), in steps of 512.
n_ctx = max(512, -(-(len(prompt) // 3 + n + 16) // 512) * 512)
llm = llama_cpp.Llama(model_path=path, n_ctx=n_ctx, n_batch=512, verbose=False,
                      n_threads=threads, n_threads_batch=threads)
llama_cpp.llama_perf_context_reset(llm._ctx.ctx)
llm.create_completion(prompt, max_tokens=n, temperature=0.0)
p = llama_cpp.llama_perf_context(llm._ctx.ctx)
print(json.dumps({"prompt_tps": 1000.0 * p.n_p_eval / p.t_p_eval_ms,
                  "gen_tps": 1000.0 * p.n_eval / p.t_eval_ms}))
"""


def cache_dir():
    if os.environ.get("PINFERC_CACHE"):
        return os.environ["PINFERC_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache"))
    return os.path.join(base, "pinferc")
