#!/usr/bin/env python3
"""Writes a synthetic HF checkpoint with a real model's exact shapes and seeded random weights.

Shapes: Llama-3.1-8B (`llama-8b`) or Llama-3.1-70B (`llama-70b`), optionally with fewer
layers (`--layers N`). Weights: bf16, matrices normal(0, 0.02) as transformers'
`initializer_range` initialises them, RMSNorm weights 1.0, so activations stay finite
through every layer. Written as HF writes a checkpoint of that size: safetensors shards of
at most ~5 GB with `model.safetensors.index.json`, config.json, and the tokenizer files
copied from `--tokenizer DIR` (its ids must be below the vocabulary: SmolLM2's 49152 are).

Memory stays bounded: every tensor is generated and written in chunks of `--chunk`
elements (default 16 Mi: ~100 MB of numpy temporaries), one at a time. The output is
written into a temporary folder beside `--out` and renamed into place when complete; an
existing `--out` is reused as is (say `--force` to rewrite it). Free disk space is checked
first: the write is refused when the disk has less than `--min-free-gb` (default 40) free.

Usage: write_synthetic.py --shape llama-8b [--layers N] --tokenizer DIR --out DIR [--seed S]
"""

import argparse
import json
import math
import os
import shutil
import struct
import sys
import time

import numpy as np

SHAPES = {
    # Llama-3.1-8B / -70B config.json (meta-llama), rope_scaling left out: see README (Scale)
    "llama-8b": dict(layers=32, hidden=4096, inter=14336, heads=32, kv=8, head_dim=128),
    "llama-70b": dict(layers=80, hidden=8192, inter=28672, heads=64, kv=8, head_dim=128),
}
VOCAB = 128256
SHARD_BYTES = 5_000_000_000
STD = 0.02


def config_json(s, layers, bos, eos):
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": bos,
        "eos_token_id": eos,
        "head_dim": s["head_dim"],
        "hidden_act": "silu",
        "hidden_size": s["hidden"],
        "initializer_range": STD,
        "intermediate_size": s["inter"],
        "max_position_embeddings": 131072,
        "mlp_bias": False,
        "num_attention_heads": s["heads"],
        "num_hidden_layers": layers,
        "num_key_value_heads": s["kv"],
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-5,
        "rope_scaling": None,
        "rope_theta": 500000.0,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "vocab_size": VOCAB,
    }


def tensors(s, layers):
    """(name, shape, kind) in the order HF's Llama checkpoints list them."""
    h, i, q, kv = s["hidden"], s["inter"], s["heads"] * s["head_dim"], s["kv"] * s["head_dim"]
    out = [("model.embed_tokens.weight", (VOCAB, h), "normal")]
    for n in range(layers):
        p = f"model.layers.{n}."
        out += [
            (p + "input_layernorm.weight", (h,), "ones"),
            (p + "self_attn.q_proj.weight", (q, h), "normal"),
            (p + "self_attn.k_proj.weight", (kv, h), "normal"),
            (p + "self_attn.v_proj.weight", (kv, h), "normal"),
            (p + "self_attn.o_proj.weight", (h, q), "normal"),
            (p + "post_attention_layernorm.weight", (h,), "ones"),
            (p + "mlp.gate_proj.weight", (i, h), "normal"),
            (p + "mlp.up_proj.weight", (i, h), "normal"),
            (p + "mlp.down_proj.weight", (h, i), "normal"),
        ]
    out += [("model.norm.weight", (h,), "ones"), ("lm_head.weight", (VOCAB, h), "normal")]
    return out


def shards(ts):
    """Groups tensors into shards of at most SHARD_BYTES (bf16), in order."""
    groups, acc = [[]], 0
    for t in ts:
        b = 2 * math.prod(t[1])
        if acc and acc + b > SHARD_BYTES:
            groups.append([])
            acc = 0
        groups[-1].append(t)
        acc += b
    return groups


def write_shard(path, group, rng, chunk):
    header, off = {"__metadata__": {"format": "pt"}}, 0
    for name, shape, _ in group:
        n = 2 * math.prod(shape)
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)  # safetensors pads the header to 8 bytes
    ones = np.full(1, 0x3F80, dtype="<u2")  # bf16 1.0
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for name, shape, kind in group:
            left = math.prod(shape)
            while left:
                n = min(left, chunk)
                if kind == "ones":
                    f.write(np.repeat(ones, n).tobytes())
                else:
                    x = rng.standard_normal(n, dtype=np.float32)
                    x *= STD
                    # bf16 = the upper half of the f32 bits, rounded to nearest even
                    u = x.view(np.uint32)
                    u += 0x7FFF + ((u >> 16) & 1)
                    f.write((u >> 16).astype("<u2").tobytes())
                left -= n
        f.flush()
        os.fsync(f.fileno())
    return off


def check_disk(parent, need_bytes, min_free_gb):
    free = shutil.disk_usage(parent).free
    if free < min_free_gb * 1e9:
        sys.exit(
            f"write_synthetic: {parent} has {free / 1e9:.1f} GB free; refusing to write "
            f"{need_bytes / 1e9:.1f} GB with less than {min_free_gb} GB free "
            f"(--min-free-gb to change)"
        )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", choices=sorted(SHAPES), required=True)
    ap.add_argument("--layers", type=int, help="layers to write (default: the model's)")
    ap.add_argument("--tokenizer", required=True, help="folder holding tokenizer.json")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--chunk", type=int, default=16 << 20)
    ap.add_argument("--min-free-gb", type=float, default=40.0)
    ap.add_argument("--force", action="store_true", help="rewrite an existing --out")
    a = ap.parse_args()
    s = SHAPES[a.shape]
    layers = a.layers if a.layers is not None else s["layers"]
    if not 1 <= layers <= s["layers"]:
        sys.exit(f"write_synthetic: --layers must be 1..{s['layers']}")
    out = os.path.abspath(a.out)
    if os.path.exists(os.path.join(out, "config.json")) and not a.force:
        print(f"reusing {out}", file=sys.stderr)
        return
    tok = json.load(open(os.path.join(a.tokenizer, "tokenizer.json")))
    ids = [v for v in tok["model"]["vocab"].values()] + [t["id"] for t in tok.get("added_tokens", [])]
    if max(ids) >= VOCAB:
        sys.exit(f"write_synthetic: the tokenizer has id {max(ids)}, outside the vocabulary {VOCAB}")
    ts = tensors(s, layers)
    total = sum(2 * math.prod(t[1]) for t in ts)
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    check_disk(parent, total, a.min_free_gb)
    tmp = os.path.join(parent, f".{os.path.basename(out)}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        rng = np.random.Generator(np.random.PCG64(a.seed))
        groups = shards(ts)
        weight_map, t0, done = {}, time.time(), 0
        for k, g in enumerate(groups):
            name = (
                "model.safetensors"
                if len(groups) == 1
                else f"model-{k + 1:05d}-of-{len(groups):05d}.safetensors"
            )
            done += write_shard(os.path.join(tmp, name), g, rng, a.chunk)
            weight_map.update({t[0]: name for t in g})
            dt = time.time() - t0
            print(f"  {name}: {done / 1e9:.2f} / {total / 1e9:.2f} GB, {done / 1e6 / dt:.0f} MB/s",
                  file=sys.stderr)
        if len(groups) > 1:
            index = {"metadata": {"total_size": total}, "weight_map": weight_map}
            json.dump(index, open(os.path.join(tmp, "model.safetensors.index.json"), "w"), indent=2)
        tc = {}
        tc_path = os.path.join(a.tokenizer, "tokenizer_config.json")
        if os.path.exists(tc_path):
            tc = json.load(open(tc_path))
        for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            if os.path.exists(os.path.join(a.tokenizer, f)):
                shutil.copy(os.path.join(a.tokenizer, f), tmp)
        ids_of = {t["content"]: t["id"] for t in tok.get("added_tokens", [])}
        bos = ids_of.get(tc.get("bos_token")) if isinstance(tc.get("bos_token"), str) else None
        eos = ids_of.get(tc.get("eos_token")) if isinstance(tc.get("eos_token"), str) else None
        cfg = config_json(s, layers, bos, eos)
        cfg["llmdrop_synthetic"] = {"shape": a.shape, "seed": a.seed, "std": STD}
        json.dump(cfg, open(os.path.join(tmp, "config.json"), "w"), indent=2)
        if os.path.exists(out):
            shutil.rmtree(out)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"wrote {out}: {total / 1e9:.2f} GB in {time.time() - t0:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
