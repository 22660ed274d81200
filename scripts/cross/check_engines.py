#!/usr/bin/env python3
"""Cross-engine checks of llmdrop's exports on the default model: each export is loaded by
the engine users run (llama.cpp through llama-cpp-python; transformers) and its logits are
compared with llmdrop's for the same pruned model. Also compares llama.cpp's KV-cache size
for the original and the attention-dropped `deci` export.

    scripts/cross/check-engines.sh        # builds llmdrop, runs this with the reference venv
"""
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("LLMDROP_BIN") or Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target") / "release" / "llmdrop")
CACHE = Path(os.environ.get("LLMDROP_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "llmdrop")
MODEL = CACHE / "SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPT = "The quick brown fox jumps over the lazy dog. In 1969, 3 astronauts flew to the Moon; print('hello')"
ATTN8 = "6,7,9,22,25,26,28,29"


def llmdrop(*args):
    out = subprocess.run([str(BIN), *args], check=True, capture_output=True, text=True)
    return out.stdout


def ours(model, drop_attn=None, drop_mlp=None):
    args = ["logits", "--model", str(model), "--prompt", PROMPT]
    if drop_attn:
        args += ["--drop-attn", drop_attn]
    if drop_mlp:
        args += ["--drop-mlp", drop_mlp]
    v = json.loads(llmdrop(*args))
    return v["ids"], np.array(v["logits"], dtype=np.float32)


def llamacpp(path, ids):
    """Logits of every position and the KV-cache size llama.cpp reports for n_ctx 2048."""
    from llama_cpp import Llama
    log_file = tempfile.TemporaryFile()
    saved = os.dup(2)
    os.dup2(log_file.fileno(), 2)  # llama.cpp logs to fd 2
    try:
        # flash attention: without it llama.cpp pads every layer's V cache to the widest
        # layer, so attention-free deci layers still hold V
        llm = Llama(model_path=str(path), n_ctx=2048, logits_all=True, verbose=True, n_threads=2, flash_attn=True)
        toks = llm.tokenize(PROMPT.encode(), add_bos=False, special=False)
        llm.eval(ids)
        logits = np.array(llm.scores[: len(ids)], dtype=np.float32)
        del llm
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    log_file.seek(0)
    log = log_file.read().decode(errors="replace")
    kv = [float(m) for m in re.findall(r"KV[^\n]*?size\s*=\s*([0-9.]+)\s*MiB", log)]
    return toks, logits, (kv[-1] if kv else None)


def compare(name, a, b):
    d = float(np.max(np.abs(a - b)))
    agree = float(np.mean(a.argmax(-1) == b.argmax(-1)))
    print(f"  {name:48s} max |Δlogit| {d:.2e}   same next token {100 * agree:5.1f}%")
    return d, agree


def main():
    tmp = Path(tempfile.mkdtemp())
    results = {}
    print(f"model {MODEL.name}, prompt of {len(PROMPT)} chars")
    ids, base = ours(MODEL)

    # llama.cpp: the original, a block-drop GGUF, an attention-drop deci GGUF, an MLP-drop deci GGUF
    toks, lc_base, kv_base = llamacpp(MODEL, ids)
    assert toks == ids, "llama.cpp tokenizes the prompt differently"
    print("llama.cpp (llama-cpp-python):")
    results["original"] = compare("original GGUF vs llmdrop", lc_base, base)
    cases = [
        ("blocks 20-23 (GGUF llama, renumbered)", "20-23", "20-23"),
        (f"attention {ATTN8} (GGUF deci)", ATTN8, None),
        ("MLP 25 (GGUF deci)", None, "25"),
        ("attention 6,7 + MLP 25,26 (GGUF deci)", "6,7", "25,26"),
    ]
    kv = {}
    for name, attn, mlp in cases:
        out = tmp / (re.sub(r"[^a-z0-9]+", "_", name) + ".gguf")
        args = ["export", "--model", str(MODEL), "--format", "gguf", "--out", str(out)]
        if attn:
            args += ["--drop-attn", attn]
        if mlp:
            args += ["--drop-mlp", mlp]
        llmdrop(*args)
        _, want = ours(MODEL, attn, mlp)
        _, got, kv_size = llamacpp(out, ids)
        results[name] = compare(name, got, want)
        kv[name] = kv_size
    if kv_base and kv.get(f"attention {ATTN8} (GGUF deci)"):
        k = kv[f"attention {ATTN8} (GGUF deci)"]
        print(f"  KV cache (n_ctx 2048): original {kv_base:.2f} MiB, attention-dropped {k:.2f} MiB "
              f"= {k / kv_base:.4f} (kept/total = {22 / 30:.4f})")
        results["kv_ratio"] = k / kv_base

    # transformers: the standard HF block-drop export
    import torch
    import transformers
    out = tmp / "hf_blocks"
    llmdrop("export", "--model", str(MODEL), "--format", "hf", "--drop-attn", "20-23", "--drop-mlp", "20-23", "--out", str(out))
    m = transformers.AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32).eval()
    with torch.no_grad():
        got = m(torch.tensor([ids])).logits[0].numpy()
    _, want = ours(MODEL, "20-23", "20-23")
    print("transformers:")
    results["hf"] = compare(f"hf export, {m.config.num_hidden_layers} layers", got, want)
    print(json.dumps({k: v for k, v in results.items()}, default=float))


if __name__ == "__main__":
    main()
