#!/usr/bin/env python3
"""Gemma-3-270M's GGUF exports run by llama.cpp (llama-cpp-python): llama.cpp decides each
layer's attention kind by its index (global iff index % 6 == 5), so llmdrop writes a Gemma
GGUF only where every kept layer keeps its kind (export/gguf_layout.rs). Each written file
is loaded by llama.cpp and its logits compared with llmdrop's for the same pruned model
(`llmdrop logits` on the source GGUF with the same drops, f32 from the Q4_K/Q6_K blocks):

  (a) the source file itself (llama.cpp's own quantized arithmetic vs llmdrop's f32: the
      yardstick of "quantization tolerance"),
  (b) blocks 6-11 dropped (six consecutive layers, the global layer 11 among them),
  (c) blocks 16, 17 dropped (trailing: the global layer 17 goes),
  (d) block 3 alone: refused by llmdrop, exit 2, nothing written (layer 5, global, would
      land at index 4, which llama.cpp runs with sliding attention).

The text is ~900 tokens of the docutils documentation, longer than Gemma's 512-token
window, and the last 32 positions are compared (llmdrop's 20 most likely tokens at each,
and the next token): there a sliding layer and a global one see different keys, so a
layer run with the wrong kind shows. Passes when each export is as close to llmdrop as the
pruned model's own quantization noise: llmdrop's `--dtype native` run (the file's blocks,
8-bit activations, as llama.cpp computes) against its f32 run gives the yardstick; llama.cpp
must be within twice that, and agree on the next token as often, less two positions.

    LLMDROP_BIN=target/release/llmdrop ~/.cache/llmdrop/refvenv/bin/python scripts/cross/check_gemma_gguf.py
"""
import json
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("LLMDROP_BIN") or ROOT / "target" / "release" / "llmdrop")
CACHE = Path(os.environ.get("LLMDROP_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "llmdrop")
MODEL = CACHE / "gemma-3-270m-q4_k_m.gguf"
TEXT = (CACHE / "text" / "docutils-0.21.2" / "docs" / "user" / "rst" / "quickstart.txt").read_text()[:4000]
TAIL = 32
TOP = 20


def llmdrop(*args, check=True):
    return subprocess.run([str(BIN), *args], check=check, capture_output=True, text=True)


def ours(model, blocks=None, dtype="f32"):
    """ids, and per position llmdrop's TOP most likely (id, logit)."""
    args = ["logits", "--model", str(model), "--prompt", TEXT, "--top", str(TOP), "--dtype", dtype]
    if blocks:
        args += ["--drop-attn", blocks, "--drop-mlp", blocks]
    v = json.loads(llmdrop(*args).stdout)
    return v["ids"], v["top"]


def llamacpp_tail(path, ids):
    """llama.cpp's full logits at the last TAIL positions: the prefix in one batch, then
    one token at a time (the logits of the last token of each call)."""
    import llama_cpp
    from llama_cpp import Llama
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)  # llama.cpp logs to fd 2
    try:
        llm = Llama(model_path=str(path), n_ctx=len(ids) + 8, n_batch=512, verbose=False, n_threads=2)

        def last():  # the logits of the last token of the latest batch
            ptr = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
            return np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).astype(np.float32)

        llm.eval(ids[: len(ids) - TAIL + 1])
        rows = [last()]
        for t in ids[len(ids) - TAIL + 1:]:
            llm.eval([t])
            rows.append(last())
        del llm
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return rows


def native_rows(ids, model, blocks):
    """llmdrop's own quantized arithmetic (`--dtype native`: the file's blocks, activations
    quantized to 8 bits, as llama.cpp does) at the last TAIL positions, as full rows over the
    f32 run's top ids (other ids are not compared)."""
    _, top = ours(model, blocks, "native")
    return top[-TAIL:]


def spread(name, native, top):
    """The same measure between llmdrop native and llmdrop f32: how far quantized arithmetic
    alone moves this pruned model."""
    top = top[-TAIL:]
    d = 0.0
    for n, t in zip(native, top):
        nd = dict(n)
        d = max([d] + [abs(nd[i] - l) for i, l in t if i in nd])
    agree = float(np.mean([n[0][0] == t[0][0] for n, t in zip(native, top)]))
    print(f"  {'':44s} llmdrop native vs f32: max |Δlogit| {d:.2e}   same next token {100 * agree:5.1f}%")
    return d, agree


def compare(name, rows, top):
    """max |Δlogit| over llmdrop's top tokens, and the share of positions whose next token
    (llama.cpp's argmax over the whole vocabulary) is llmdrop's first."""
    top = top[-TAIL:]
    d = max(abs(float(r[i]) - l) for r, t in zip(rows, top) for i, l in t)
    agree = float(np.mean([int(r.argmax()) == t[0][0] for r, t in zip(rows, top)]))
    print(f"  {name:44s} max |Δlogit| {d:.2e}   same next token {100 * agree:5.1f}%")
    return d, agree


def main():
    tmp = Path(tempfile.mkdtemp())
    ids, base = ours(MODEL)
    print(f"model {MODEL.name}, {len(ids)} tokens (window 512), last {TAIL} positions; llmdrop {BIN}")
    results = {"(a) source GGUF": compare("(a) source GGUF", llamacpp_tail(MODEL, ids), base)}
    yards = {"(a) source GGUF": spread("", native_rows(ids, MODEL, None), base)}
    for name, blocks in [("(b) blocks 6-11 dropped", "6-11"), ("(c) blocks 16,17 dropped", "16,17")]:
        out = tmp / (blocks.replace(",", "_") + ".gguf")
        llmdrop("export", "--model", str(MODEL), "--format", "gguf", "--drop-attn", blocks,
                "--drop-mlp", blocks, "--out", str(out))
        _, want = ours(MODEL, blocks)
        results[name] = compare(name, llamacpp_tail(out, ids), want)
        yards[name] = spread("", native_rows(ids, MODEL, blocks), want)
        out.unlink()
    r = llmdrop("export", "--model", str(MODEL), "--format", "gguf", "--drop-attn", "3",
                "--drop-mlp", "3", "--out", str(tmp / "refused.gguf"), check=False)
    print(f"  (d) block 3 dropped: exit {r.returncode}: {r.stderr.strip()}")
    assert r.returncode == 2 and not (tmp / "refused.gguf").exists()
    for k, (d, agree) in results.items():
        yard, yard_agree = yards[k]
        assert d <= 2 * yard, f"{k}: llama.cpp is {d} from llmdrop; quantized arithmetic alone moves it {yard}"
        assert agree >= yard_agree - 2 / TAIL, f"{k}: next tokens agree on {agree:.0%}"
    print(json.dumps({"llama.cpp": results, "llmdrop native vs f32": yards}, default=float))


if __name__ == "__main__":
    main()
