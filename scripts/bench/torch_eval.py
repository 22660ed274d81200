#!/usr/bin/env python3
"""Peer benchmark for `llmdrop eval`: the same multiple-choice log-likelihoods computed the
way lm-eval-harness's HF backend does with its default batch size 1 (one forward pass of
context + continuation per choice), transformers float32 on CPU. Prints JSON."""
import argparse
import json
import sys
import time
from pathlib import Path

import torch
import transformers

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
from mcformat import encode_pair, mc_requests  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True, help="GGUF file")
ap.add_argument("--threads", type=int, required=True)
ap.add_argument("--task", required=True, help="task file (mc / winogrande / arc .jsonl, or BIG-bench .json)")
ap.add_argument("--limit", type=int)
a = ap.parse_args()

torch.set_num_threads(a.threads)
torch.set_grad_enabled(False)
from llama_cpp import Llama  # noqa: E402

llm = Llama(model_path=a.model, vocab_only=True, verbose=False)
p = Path(a.model)
model = transformers.AutoModelForCausalLM.from_pretrained(str(p.parent), gguf_file=p.name, dtype=torch.float32).eval()
examples = mc_requests(Path(a.task))[: a.limit]
correct, tokens = 0, 0
t0 = time.perf_counter()
for requests, choices, gold in examples:
    lls = []
    for ctx, cont in requests:
        c, k = encode_pair(llm, ctx, cont)
        inp = torch.tensor([(c + k)[:-1]])
        tokens += inp.shape[1]
        lp = torch.log_softmax(model(inp).logits[0], -1)
        lls.append(float(sum(lp[len(c) - 1 + j, t] for j, t in enumerate(k))))
    correct += int(max(range(len(lls)), key=lambda i: lls[i]) == gold)
secs = time.perf_counter() - t0
print(json.dumps({
    "peer": f"transformers {transformers.__version__} / torch {torch.__version__} float32, lm-eval HF backend batch 1",
    "threads": a.threads, "examples": len(examples), "seconds": secs,
    "examples_per_sec": len(examples) / secs, "tokens_per_sec": tokens / secs, "acc": correct / len(examples),
}))
