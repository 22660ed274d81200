#!/usr/bin/env python3
"""Peer benchmark: llama.cpp (llama-cpp-python) on the same GGUF, the same measurement as
`llmdrop bench`: one prompt of `context` tokens, then `generate` single-token steps
(median latency). Prints JSON. `--no-extra-bufts` loads the weights without llama.cpp's
extra buffer types (its repacked and AMX layouts), as `llama-bench --repack 0` does: on
a VM that shows AMX but faults on its tile instructions, llama.cpp crashes with them."""
import argparse
import json
import statistics
import time

import llama_cpp
import numpy as np
from llama_cpp import Llama

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True)
ap.add_argument("--threads", type=int, required=True)
ap.add_argument("--context", type=int, default=128)
ap.add_argument("--generate", type=int, default=32)
ap.add_argument("--reps", type=int, default=3)
ap.add_argument("--no-extra-bufts", action="store_true")
a = ap.parse_args()

if a.no_extra_bufts:
    # Llama() takes its model parameters from this function; it has no argument for them
    defaults = llama_cpp.llama_model_default_params

    def without_extra_bufts():
        p = defaults()
        p.use_extra_bufts = False
        return p

    llama_cpp.llama_model_default_params = without_extra_bufts
    llama_cpp.llama.llama_cpp.llama_model_default_params = without_extra_bufts

llm = Llama(model_path=a.model, n_ctx=a.context + a.generate + 8, n_threads=a.threads,
            n_threads_batch=a.threads, n_batch=max(512, a.context), verbose=False)
vocab = llm.n_vocab()


def last_argmax():
    # the last position's logits as llama.cpp left them (Llama.scores holds them only
    # with logits_all, which would copy every prompt position's logits)
    logits = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
    return int(np.ctypeslib.as_array(logits, shape=(vocab,)).argmax())


prompt = [(i * 7919 + 13) % vocab for i in range(a.context)]
prefill, decode = [], []
for rep in range(a.reps + 1):
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(prompt)
    t_prefill = time.perf_counter() - t0
    nxt = last_argmax()
    lat = []
    for _ in range(a.generate):
        t = time.perf_counter()
        llm.eval([nxt])
        nxt = last_argmax()
        lat.append(time.perf_counter() - t)
    if rep == 0:
        continue
    prefill.append(a.context / t_prefill)
    decode.append(1.0 / statistics.median(lat))
peer = "llama.cpp (llama-cpp-python), model's own tensor types"
if a.no_extra_bufts:
    peer += ", no extra buffer types (as llama-bench --repack 0)"
print(json.dumps({"peer": peer, "threads": a.threads,
                  "context": a.context, "generate": a.generate,
                  "prefill_tokens_per_sec": statistics.median(prefill),
                  "decode_tokens_per_sec": statistics.median(decode)}))
