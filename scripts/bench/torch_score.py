#!/usr/bin/env python3
"""Peer benchmark for `llmdrop score`: a one-pass PyTorch implementation of the paper's
similarities (block, attention, MLP with residual; consecutive matrix) with forward hooks
on transformers float32, over `samples` blocks of `seq_len` tokens. Prints JSON with
tokens/s and peak RSS."""
import argparse
import json
import resource
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import transformers

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True, help="GGUF file")
ap.add_argument("--threads", type=int, required=True)
ap.add_argument("--samples", type=int, default=64)
ap.add_argument("--seq-len", type=int, default=512)
a = ap.parse_args()

torch.set_num_threads(a.threads)
torch.set_grad_enabled(False)
p = Path(a.model)
model = transformers.AutoModelForCausalLM.from_pretrained(
    str(p.parent), gguf_file=p.name, dtype=torch.float32).eval()
layers = model.model.layers
L, V = len(layers), model.config.vocab_size
cap = {}
for i, layer in enumerate(layers):
    layer.register_forward_pre_hook(lambda m, a_, kw, i=i: cap.__setitem__(("x", i), a_[0] if a_ else kw["hidden_states"]), with_kwargs=True)
    layer.register_forward_hook(lambda m, a_, o, i=i: cap.__setitem__(("z", i), o[0] if isinstance(o, tuple) else o))
    layer.self_attn.register_forward_hook(lambda m, a_, o, i=i: cap.__setitem__(("a", i), o[0]))

sums = torch.zeros(3, L, dtype=torch.float64)
pairs = torch.zeros(L + 1, L + 1, dtype=torch.float64)
ntok = 0
t0 = time.perf_counter()
for b in range(a.samples):
    ids = torch.tensor([[(b * 7919 + i * 31 + 7) % V for i in range(a.seq_len)]])
    cap.clear()
    model.model(ids)  # no lm_head, as llmdrop's scoring
    hs = []
    for i in range(L):
        x, z = cap[("x", i)][0], cap[("z", i)][0]
        y = x + cap[("a", i)][0]
        sums[0, i] += F.cosine_similarity(x, z, dim=-1).double().sum()
        sums[1, i] += F.cosine_similarity(x, y, dim=-1).double().sum()
        sums[2, i] += F.cosine_similarity(y, z, dim=-1).double().sum()
        hs.append(x)
    hs.append(cap[("z", L - 1)][0])
    u = F.normalize(torch.stack(hs, 1), dim=-1)  # [tokens, L+1, hidden]
    pairs += (u @ u.transpose(1, 2)).sum(0).double()
    ntok += a.seq_len
secs = time.perf_counter() - t0
print(json.dumps({
    "peer": f"PyTorch {torch.__version__} + transformers {transformers.__version__} float32, forward hooks",
    "threads": a.threads, "tokens": ntok, "seconds": secs, "tokens_per_sec": ntok / secs,
    "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
}))
