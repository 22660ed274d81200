#!/usr/bin/env python3
"""The Python peer of `llmdrop score --stream` on a model larger than memory: transformers +
accelerate with disk offload (`device_map` with an `offload_folder`: at most `--max-cpu`
of weights held, the rest read from disk layer by layer during the forward pass), the
paper's similarities taken with forward hooks on every decoder layer (block cos(X, Z),
attention cos(X, Y), MLP cos(Y, Z), Y = X + attention output; mean over tokens), on the
calibration blocks llmdrop scored (the ids in llmdrop's `--dump-blocks` file, or the same
packing done here: every document's tokens + EOS, concatenated, cut into blocks).

All blocks go through the model in one batch, so the offloaded weights are read once (one
forward per block would read the whole model once per block). Prints JSON: wall time,
tokens/s, peak RSS, bytes read from disk (/proc/self/io), and the similarities, compared
with llmdrop's scores.json when given.

Usage: peer_offload.py --model DIR --text-dir DIR [--samples 16] [--seq-len 512]
                       [--dtype float32|bfloat16] [--max-cpu 4GiB] [--offload DIR]
                       [--scores scores.json] [--threads N]
"""

import argparse
import json
import os
import pathlib
import resource
import shutil
import tempfile
import time

import torch
import torch.nn.functional as F
import transformers
from tokenizers import Tokenizer


def read_bytes():
    for line in open("/proc/self/io"):
        if line.startswith("read_bytes:"):
            return int(line.split()[1])
    return 0


def blocks(model_dir, text_dir, samples, seq_len):
    """llmdrop's packing: documents sorted by path, each one's tokens (no special tokens)
    followed by EOS, concatenated, cut into `seq_len` blocks, the first `samples`."""
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    eos = json.load(open(os.path.join(model_dir, "config.json")))["eos_token_id"]
    # sorted as Rust sorts paths: component by component
    files = sorted(
        (os.path.join(d, f) for d, _, fs in os.walk(text_dir) for f in fs if f.endswith(".txt")),
        key=lambda p: pathlib.Path(p).parts,
    )
    ids = []
    for f in files:
        ids += tok.encode(open(f, encoding="utf-8").read(), add_special_tokens=False).ids + [eos]
        if len(ids) >= samples * seq_len:
            break
    return [ids[i * seq_len:(i + 1) * seq_len] for i in range(samples)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--text-dir", required=True)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--max-cpu", default="4GiB")
    ap.add_argument("--offload", help="offload folder (default: a temporary one)")
    ap.add_argument("--scores", help="llmdrop's scores.json to compare with")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.set_grad_enabled(False)
    dtype = getattr(torch, a.dtype)
    b = blocks(a.model, a.text_dir, a.samples, a.seq_len)
    off = a.offload or tempfile.mkdtemp(prefix="peer-offload-", dir=os.path.dirname(os.path.abspath(a.model)))
    r0, t0 = read_bytes(), time.perf_counter()
    model = transformers.AutoModelForCausalLM.from_pretrained(
        a.model, dtype=dtype, device_map="auto", max_memory={"cpu": a.max_cpu},
        offload_folder=off, offload_state_dict=True,
    ).eval()
    t_load = time.perf_counter() - t0
    placement = {}
    for k, v in getattr(model, "hf_device_map", {}).items():
        placement[str(v)] = placement.get(str(v), 0) + 1
    layers = model.model.layers
    L = len(layers)
    cap = {}
    for i, layer in enumerate(layers):
        layer.register_forward_pre_hook(
            lambda m, a_, kw, i=i: cap.__setitem__(("x", i), a_[0] if a_ else kw["hidden_states"]),
            with_kwargs=True)
        layer.register_forward_hook(lambda m, a_, o, i=i: cap.__setitem__(("z", i), o[0] if isinstance(o, tuple) else o))
        layer.self_attn.register_forward_hook(lambda m, a_, o, i=i: cap.__setitem__(("a", i), o[0]))
    sums = torch.zeros(3, L, dtype=torch.float64)

    # each layer's cosines taken as soon as its outputs exist, then its captures freed
    def take(i):
        x, z = cap.pop(("x", i)).float(), cap.pop(("z", i)).float()
        y = x + cap.pop(("a", i)).float()
        sums[0, i] += F.cosine_similarity(x, z, dim=-1).double().sum()
        sums[1, i] += F.cosine_similarity(x, y, dim=-1).double().sum()
        sums[2, i] += F.cosine_similarity(y, z, dim=-1).double().sum()

    for i, layer in enumerate(layers):
        layer.register_forward_hook(lambda m, a_, o, i=i: take(i))
    t1 = time.perf_counter()
    model.model(torch.tensor(b))  # no lm_head, as llmdrop's scoring
    secs = time.perf_counter() - t1
    n = len(b) * a.seq_len
    sims = (sums / n).tolist()
    out = {
        "peer": f"PyTorch {torch.__version__} + transformers {transformers.__version__} "
                f"{a.dtype}, accelerate disk offload (max cpu {a.max_cpu}), forward hooks, one batch",
        "placement": placement, "threads": a.threads, "tokens": n,
        "load_seconds": t_load, "seconds": secs, "tokens_per_sec": n / secs,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "read_bytes": read_bytes() - r0,
        "offload_folder_bytes": sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(off) for f in fs),
        "block": sims[0], "attn": sims[1], "mlp": sims[2],
    }
    if a.scores:
        t = json.load(open(a.scores))["table"]
        out["max_abs_diff_vs_llmdrop"] = {
            k: max(abs(float(p) - float(q)) for p, q in zip(out[k], t[k])) for k in ("block", "attn", "mlp")
        }
    if not a.offload:
        shutil.rmtree(off, ignore_errors=True)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
