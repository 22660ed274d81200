#!/usr/bin/env python3
"""Gemma-3-270M's HF exports checked by transformers (CPU, float32): llmdrop writes the
pruned model from the cached Q4_K_M GGUF; transformers' AutoModelForCausalLM loads it and its
logits are compared with `llmdrop logits` on the GGUF with the same drops (f32).

  (a) `hf`, no drop;
  (b) `hf`, two whole blocks dropped (one of them global: the kept layers are renumbered and
      `layer_types` must keep each one's kind);
  (c) `hf-llmdrop`, attention layers dropped, and (d) attention + MLP layers dropped.
      Stock transformers cannot run LLM-Drop's format (its drop lists need LLM-Drop's
      modeling code; the dropped weights are absent): here each dropped module is replaced by
      one that outputs zeros, which is what dropping means in Gemma's sandwich layer
      (post_norm(0) = 0, the residual passes unchanged).

And the exported tokenizer: AutoTokenizer's ids of the prompt (with BOS) against llmdrop's,
and of the docutils documentation against llama.cpp's ids recorded in
tests/fixtures/gemma3/tokens.json (which llmdrop's SPM tokenizer equals: tokenizer_spm.rs).

    scripts/cross/check-gemma.sh      # builds llmdrop (release), runs this with the reference venv
"""
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("LLMDROP_BIN") or ROOT / "target" / "release" / "llmdrop")
CACHE = Path(os.environ.get("LLMDROP_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "llmdrop")
MODEL = CACHE / "gemma-3-270m-q4_k_m.gguf"
DOCS = CACHE / "text" / "docutils-0.21.2" / "docs"
PROMPT = ("The quick brown fox jumps over the lazy dog. In 1969, 3 astronauts flew to the Moon; "
          "print('hello') — naïve café, 東京.")
GOAL = 1e-3


def llmdrop(*args):
    out = subprocess.run([str(BIN), *args], check=True, capture_output=True, text=True)
    return out.stdout


def ours(drop_attn=None, drop_mlp=None):
    args = ["logits", "--model", str(MODEL), "--prompt", PROMPT]
    if drop_attn:
        args += ["--drop-attn", drop_attn]
    if drop_mlp:
        args += ["--drop-mlp", drop_mlp]
    v = json.loads(llmdrop(*args))
    return v["ids"], np.array(v["logits"], dtype=np.float32)


def export(fmt, out, drop_attn=None, drop_mlp=None):
    args = ["export", "--model", str(MODEL), "--format", fmt, "--out", str(out)]
    if drop_attn:
        args += ["--drop-attn", drop_attn]
    if drop_mlp:
        args += ["--drop-mlp", drop_mlp]
    llmdrop(*args)
    return json.loads((out / "config.json").read_text())


class Zero(__import__("torch").nn.Module):
    """A dropped module: outputs zeros (attention: with no weights)."""

    def __init__(self, attn):
        super().__init__()
        self.attn = attn

    def forward(self, hidden_states, *args, **kwargs):
        import torch
        z = torch.zeros_like(hidden_states)
        return (z, None) if self.attn else z


def transformers_logits(path, ids, llmdrop_lists=False):
    import torch
    import transformers
    transformers.logging.set_verbosity_error()  # LLM-Drop dirs lack the dropped weights
    m = transformers.AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()
    if llmdrop_lists:
        c = m.config
        for i in getattr(c, "drop_attn_list", None) or []:
            m.model.layers[i].self_attn = Zero(True)
        for i in getattr(c, "drop_mlp_list", None) or []:
            m.model.layers[i].mlp = Zero(False)
    with torch.no_grad():
        return m(torch.tensor([ids])).logits[0].numpy(), m.config


def compare(name, a, b):
    d = float(np.max(np.abs(a - b)))
    agree = float(np.mean(a.argmax(-1) == b.argmax(-1)))
    ok = "ok" if d <= GOAL else "OVER GOAL"
    print(f"  {name:58s} max |Δlogit| {d:.2e} ({ok})   same next token {100 * agree:5.1f}%", flush=True)
    return d


def check_tokenizer(path, ids):
    import transformers
    tok = transformers.AutoTokenizer.from_pretrained(str(path))
    got = tok(PROMPT)["input_ids"]
    same = got == ids
    print(f"  AutoTokenizer ({type(tok).__name__}) on the prompt (with BOS): "
          f"{'same ids' if same else 'DIFFERENT ids'} ({len(ids)} tokens)")
    ref = json.loads((ROOT / "tests/fixtures/gemma3/tokens.json").read_text())
    nbytes = ntok = 0
    bad = []
    t = time.time()
    for f in ref["files"]:
        text = (DOCS / f["file"]).read_text()
        out = tok(text, add_special_tokens=False)["input_ids"]
        sha = hashlib.sha256(np.array(out, dtype="<u4").tobytes()).hexdigest()
        nbytes += len(text.encode())
        ntok += len(out)
        if sha != f["ids_sha256"]:
            bad.append(f["file"])
    print(f"  AutoTokenizer on the docutils docs: {len(ref['files']) - len(bad)}/{len(ref['files'])} files "
          f"give llama.cpp's ids ({nbytes} bytes, {ntok} tokens, {time.time() - t:.1f} s)")
    for s in ref["strings"]:
        out = tok(s["text"], add_special_tokens=False, split_special_tokens=True)["input_ids"]
        if out != s["ids"]:
            bad.append(repr(s["text"]))
    for s in ref["special"]:
        out = tok(s["text"], add_special_tokens=False)["input_ids"]
        if out != s["ids"]:
            bad.append(repr(s["text"]))
    print(f"  AutoTokenizer on {len(ref['strings'])} edge + {len(ref['special'])} special strings: "
          f"{'same ids' if not bad else 'differ: ' + ', '.join(bad)}")
    return same and not bad


def main():
    import torch
    torch.set_num_threads(os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as d:  # four exports of ~1 GB each
        run(Path(d), torch)


def run(tmp, torch):
    print(f"model {MODEL.name}; transformers {__import__('transformers').__version__}, "
          f"torch {torch.__version__}; prompt of {len(PROMPT)} chars")
    results = {}
    ids, base = ours()
    out = tmp / "hf_full"
    export("hf", out)
    print("tokenizer:")
    results["tokenizer_same"] = check_tokenizer(out, ids)
    print("logits, transformers vs llmdrop:")
    got, _ = transformers_logits(out, ids)
    results["hf_full"] = compare("(a) hf, no drop", got, base)

    blocks = "3,5"
    out = tmp / "hf_blocks"
    c = export("hf", out, blocks, blocks)
    got, cfg = transformers_logits(out, ids)
    _, want = ours(blocks, blocks)
    kinds = "".join("G" if t == "full_attention" else "s" for t in cfg.layer_types)
    results["hf_blocks"] = compare(f"(b) hf, blocks {blocks} dropped ({cfg.num_hidden_layers} layers: {kinds})", got, want)
    assert c["layer_types"] == cfg.layer_types

    for name, attn, mlp in [("(c) hf-llmdrop, attention 8,9,10,12,13,14", "8,9,10,12,13,14", None),
                            ("(d) hf-llmdrop, attention 9,10,13 + MLP 15,16", "9,10,13", "15,16")]:
        out = tmp / name.split()[0].strip("()")
        export("hf-llmdrop", out, attn, mlp)
        got, _ = transformers_logits(out, ids, llmdrop_lists=True)
        _, want = ours(attn, mlp)
        results[name] = compare(name + " (zeroed modules)", got, want)
    print(json.dumps(results))
    worst = max(v for v in results.values() if isinstance(v, float))
    sys.exit(0 if worst <= GOAL and results["tokenizer_same"] else 1)


if __name__ == "__main__":
    main()
