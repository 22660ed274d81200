#!/usr/bin/env python3
"""Peer benchmark: transformers float32 on CPU, the same measurement as `llmdrop bench`
(one forward pass over a `context`-token prompt; then `generate` single-token steps with
the KV cache, median per-token latency). Prints JSON."""
import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import transformers

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True, help="GGUF file")
ap.add_argument("--threads", type=int, required=True)
ap.add_argument("--context", type=int, default=128)
ap.add_argument("--generate", type=int, default=32)
ap.add_argument("--reps", type=int, default=3)
a = ap.parse_args()

torch.set_num_threads(a.threads)
torch.set_grad_enabled(False)
p = Path(a.model)
model = transformers.AutoModelForCausalLM.from_pretrained(
    str(p.parent), gguf_file=p.name, dtype=torch.float32).eval()
vocab = model.config.vocab_size
prompt = torch.tensor([[(i * 7919 + 13) % vocab for i in range(a.context)]])

prefill, decode = [], []
for rep in range(a.reps + 1):
    t0 = time.perf_counter()
    out = model(prompt, use_cache=True)
    nxt = out.logits[0, -1].argmax().view(1, 1)
    t_prefill = time.perf_counter() - t0
    past = out.past_key_values
    lat = []
    for _ in range(a.generate):
        t = time.perf_counter()
        out = model(nxt, past_key_values=past, use_cache=True)
        past = out.past_key_values
        nxt = out.logits[0, -1].argmax().view(1, 1)
        lat.append(time.perf_counter() - t)
    if rep == 0:
        continue
    prefill.append(a.context / t_prefill)
    decode.append(1.0 / statistics.median(lat))

print(json.dumps({
    "peer": f"transformers {transformers.__version__} / torch {torch.__version__} float32",
    "threads": a.threads, "context": a.context, "generate": a.generate,
    "prefill_tokens_per_sec": statistics.median(prefill),
    "decode_tokens_per_sec": statistics.median(decode),
}))
