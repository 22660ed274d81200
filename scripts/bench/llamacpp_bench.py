#!/usr/bin/env python3
"""Peer benchmark: llama.cpp (llama-cpp-python) on the same GGUF, the same measurement as
`llmdrop bench`: one prompt of `context` tokens, then `generate` single-token steps
(median latency). Prints JSON."""
import argparse
import json
import statistics
import time

from llama_cpp import Llama

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True)
ap.add_argument("--threads", type=int, required=True)
ap.add_argument("--context", type=int, default=128)
ap.add_argument("--generate", type=int, default=32)
ap.add_argument("--reps", type=int, default=3)
a = ap.parse_args()

llm = Llama(model_path=a.model, n_ctx=a.context + a.generate + 8, n_threads=a.threads,
            n_threads_batch=a.threads, n_batch=max(512, a.context), verbose=False)
vocab = llm.n_vocab()
prompt = [(i * 7919 + 13) % vocab for i in range(a.context)]
prefill, decode = [], []
for rep in range(a.reps + 1):
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(prompt)
    t_prefill = time.perf_counter() - t0
    nxt = int(llm.scores[llm.n_tokens - 1].argmax())
    lat = []
    for _ in range(a.generate):
        t = time.perf_counter()
        llm.eval([nxt])
        nxt = int(llm.scores[llm.n_tokens - 1].argmax())
        lat.append(time.perf_counter() - t)
    if rep == 0:
        continue
    prefill.append(a.context / t_prefill)
    decode.append(1.0 / statistics.median(lat))
print(json.dumps({"peer": "llama.cpp (llama-cpp-python), model's own tensor types", "threads": a.threads,
                  "context": a.context, "generate": a.generate,
                  "prefill_tokens_per_sec": statistics.median(prefill),
                  "decode_tokens_per_sec": statistics.median(decode)}))
