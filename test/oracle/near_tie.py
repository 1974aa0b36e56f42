#!/usr/bin/env python3
"""llama.cpp's logit margin between two candidate next tokens.

    near_tie.py MODEL PROMPT PREFIX_IDS A B

Evaluates PROMPT (special tokens parsed, BOS added, as pinferc does) and
then the comma-separated token ids PREFIX_IDS with llama.cpp, and prints
|logit(A) - logit(B)| at the next position. The oracle tests use it where
an executable whose arithmetic is not bitwise the reference's (exact mode
over a GELU model: its down projection sums the neurons in another order)
picks another token than the reference: a choice between two tokens that
llama.cpp, an independent implementation, scores within a few tenths of a
logit of each other is a near-tie, not a fault.
"""
import sys

import llama_cpp


def main():
    model, prompt, prefix, a, b = sys.argv[1:6]
    llm = llama_cpp.Llama(model_path=model, n_ctx=512, logits_all=True,
                          verbose=False)
    tokens = llm.tokenize(prompt.encode(), add_bos=True, special=True)
    tokens += [int(t) for t in prefix.split(",") if t]
    llm.eval(tokens)
    logits = llm.scores[len(tokens) - 1]
    print(f"{abs(float(logits[int(a)]) - float(logits[int(b)])):.4f}")


if __name__ == "__main__":
    main()
