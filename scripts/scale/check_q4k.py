#!/usr/bin/env python3
"""Checks a GGUF that llmdrop exported from a safetensors model against an independent
decoder: every tensor is read and dequantized by the `gguf` Python package (llama.cpp's
own reader, not llmdrop's or candle's) and compared with the source tensor, q/k rows put
in GGUF's order as llama.cpp's converter does.

Q4_K (4-bit values, 6-bit scales and minimums per 32, f16 super-block scales) is lossy,
so the check is what a correct encoding gives and a wrong one cannot:
  - every 32-element sub-block holds at most 16 distinct values (4 bits),
  - the relative RMS error ||deq - src|| / ||src|| is that of 4-bit rounding (< 0.15;
    a wrong layout, permutation or scale gives ~1 or more),
  - every error is within one quantization step of its sub-block (max - min) / 15 plus
    the rounding of the 6-bit scales (checked as 1.5 steps).
f32 tensors (norms) must be exact; f16 ones within f16 rounding.

Usage: check_q4k.py EXPORT.gguf SOURCE_HF_DIR [--max-rows N]
"""

import argparse
import json
import os
import sys

import numpy as np
from gguf import GGUFReader, GGMLQuantizationType as T
from gguf.quants import dequantize
from safetensors import safe_open

HF = {
    "token_embd": "model.embed_tokens",
    "output_norm": "model.norm",
    "output": "lm_head",
    "attn_norm": "input_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_norm": "post_attention_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}


def hf_name(g):
    parts = g.split(".")
    if parts[0] == "blk":
        return f"model.layers.{parts[1]}.{HF[parts[2]]}.weight"
    return f"{HF[parts[0]]}.weight"


def open_source(d):
    files = {}
    idx = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(idx):
        for k, f in json.load(open(idx))["weight_map"].items():
            files[k] = os.path.join(d, f)
    else:
        f = os.path.join(d, "model.safetensors")
        with safe_open(f, "np") as s:
            files = {k: f for k in s.keys()}
    return files


def load(files, name, rows):
    with safe_open(files[name], "pt") as s:
        sl = s.get_slice(name)
        t = sl[:rows] if len(sl.get_shape()) == 2 else sl[:]
        return t.float().numpy()


def permute(w, heads):
    """HF q/k rows -> GGUF order (llama.cpp's convert_hf_to_gguf `permute`)."""
    r = w.shape[0]
    return w.reshape(heads, 2, r // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gguf")
    ap.add_argument("source")
    ap.add_argument("--max-rows", type=int, default=4096, help="rows checked per matrix")
    a = ap.parse_args()
    cfg = json.load(open(os.path.join(a.source, "config.json")))
    heads, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    files = open_source(a.source)
    r = GGUFReader(a.gguf)
    arch = bytes(r.fields["general.architecture"].parts[-1]).decode()
    print(f"{a.gguf}: arch {arch}, {len(r.tensors)} tensors")
    bad = 0
    for t in r.tensors:
        if t.name.startswith("blk.") and t.name.split(".")[2] in ("ffn_gate", "ffn_up", "ffn_down") \
                and hf_name(t.name) not in files:
            continue  # deci's stand-in FFN of a dropped MLP
        src_name = hf_name(t.name)
        shape = [int(x) for x in reversed(t.shape)]  # rows first
        rows = min(shape[0], a.max_rows) if len(shape) == 2 else None
        cols = shape[-1]
        src = load(files, src_name, rows)
        if t.name.endswith("attn_q.weight"):
            src = permute(load(files, src_name, shape[0]), heads)[:rows]
        elif t.name.endswith("attn_k.weight"):
            src = permute(load(files, src_name, shape[0]), kv)[:rows]
        raw = np.asarray(t.data)
        if len(shape) == 2:
            raw = raw.reshape(shape[0], -1)[:rows]
        deq = dequantize(raw, t.tensor_type).reshape(src.shape).astype(np.float32)
        err = deq - src
        rel = float(np.linalg.norm(err) / max(np.linalg.norm(src), 1e-30))
        ok = True
        if t.tensor_type == T.F32:
            ok = not err.any()
            what = f"exact: {ok}"
        elif t.tensor_type == T.F16:
            ok = rel < 1e-3
            what = f"rel RMS err {rel:.2e}"
        elif t.tensor_type == T.Q4_K:
            sub = deq.reshape(-1, 32)
            distinct = max(len(np.unique(b)) for b in sub[: min(len(sub), 20000)])
            s = src.reshape(-1, 32)
            step = (s.max(1) - s.min(1)) / 15
            within = float(np.max(np.abs(err.reshape(-1, 32)) / np.maximum(step, 1e-30)[:, None]))
            ok = distinct <= 16 and rel < 0.15 and within <= 1.5
            what = f"rel RMS err {rel:.4f}, <= {distinct} values per 32, max |err| {within:.2f} steps"
        else:
            ok = rel < 0.15
            what = f"rel RMS err {rel:.4f}"
        bad += not ok
        print(f"  {'ok ' if ok else 'BAD'} {t.name:28} {t.tensor_type.name:5} {str(shape):16} {what}")
    print("all tensors as a correct encoding gives" if not bad else f"{bad} tensors wrong")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
