#!/usr/bin/env python3
"""The Python peer of `llmdrop score --stream` on a model larger than memory: transformers +
accelerate with disk offload (`device_map` with an `offload_folder`: the first layers that
fit in `--max-cpu` held, the rest — by default all — read from disk layer by layer during
the forward pass), the
paper's similarities taken with forward hooks on every decoder layer (block cos(X, Z),
attention cos(X, Y), MLP cos(Y, Z), Y = X + attention output; mean over tokens), on the
calibration blocks llmdrop scored (the ids in llmdrop's `--dump-blocks` file, or the same
packing done here: every document's tokens + EOS, concatenated, cut into blocks).

All blocks go through the model in one batch, so the offloaded weights are read once (one
forward per block would read the whole model once per block). Prints JSON: wall time,
tokens/s, peak RSS, bytes read from disk (/proc/self/io), and the similarities, compared
with llmdrop's scores.json when given.

Usage: peer_offload.py --model DIR --text-dir DIR [--samples 16] [--seq-len 512]
                       [--dtype float32|bfloat16] [--max-cpu 0GiB] [--offload DIR]
                       [--scores scores.json] [--threads N] [--rss-limit GiB]
"""

import argparse
import json
import os
import pathlib
import resource
import shutil
import tempfile
import threading
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


def rss_bytes():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def watch_rss(limit, state, t0):
    """Stops the process when its resident memory passes `limit` bytes (a run that cannot fit
    would otherwise drive the machine into swap or the OOM killer), printing what it reached."""
    peak = 0
    while True:
        rss = rss_bytes()
        peak = max(peak, rss)
        if rss > limit:
            print(json.dumps({"stopped": "resident memory past --rss-limit", "rss_limit_bytes": limit,
                              "rss_bytes": rss, "phase": state["phase"],
                              "seconds": time.perf_counter() - t0}, indent=1), flush=True)
            os._exit(3)
        time.sleep(0.05)


def device_map(model_dir, max_cpu):
    """Every decoder layer, the embedding and the head as its own entry: the first layers
    that fit in `max_cpu` (bytes in the checkpoint's dtype, widened to the compute dtype by
    the caller's choice) held in memory, the rest on disk. accelerate's `device_map="auto"`
    with a small budget collapses a model that fits nowhere into one entry (`"": "disk"`),
    whose hook then loads every weight at once: the whole model in memory."""
    if max_cpu in ("0", "0GiB"):
        budget = 0
    else:
        units = {"GiB": 1 << 30, "MiB": 1 << 20}
        budget = next(int(float(max_cpu[:-3]) * v) for k, v in units.items() if max_cpu.endswith(k))
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    h, f = cfg["hidden_size"], cfg["intermediate_size"]
    kv = cfg["num_key_value_heads"] * cfg.get("head_dim", h // cfg["num_attention_heads"])
    layer_bytes = 4 * (2 * h * h + 2 * h * kv + 3 * h * f)  # f32, the widest compute dtype
    m = {"model.embed_tokens": "disk", "model.norm": "cpu", "model.rotary_emb": "cpu", "lm_head": "disk"}
    for i in range(cfg["num_hidden_layers"]):
        fits = (i + 1) * layer_bytes <= budget
        m[f"model.layers.{i}"] = "cpu" if fits else "disk"
    return m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--text-dir", required=True)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--max-cpu", default="0GiB", help="layers held in memory (the first ones that fit); the rest on disk")
    ap.add_argument("--offload", help="offload folder (default: a temporary one)")
    ap.add_argument("--scores", help="llmdrop's scores.json to compare with")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--rss-limit", type=float, default=18.0,
                    help="GiB: stop (exit 3) with a report when resident memory passes this")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.set_grad_enabled(False)
    dtype = getattr(torch, a.dtype)
    b = blocks(a.model, a.text_dir, a.samples, a.seq_len)
    off = a.offload or tempfile.mkdtemp(prefix="peer-offload-", dir=os.path.dirname(os.path.abspath(a.model)))
    r0, t0 = read_bytes(), time.perf_counter()
    state = {"phase": "load"}
    threading.Thread(target=watch_rss, args=(int(a.rss_limit * (1 << 30)), state, t0), daemon=True).start()
    model = transformers.AutoModelForCausalLM.from_pretrained(
        a.model, dtype=dtype, device_map=device_map(a.model, a.max_cpu),
        offload_folder=off, offload_state_dict=True,
    ).eval()
    t_load = time.perf_counter() - t0
    rss_load = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
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
    state["phase"] = "forward"
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
        "peak_rss_after_load_bytes": rss_load,
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
