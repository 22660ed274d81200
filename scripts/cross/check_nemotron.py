#!/usr/bin/env python3
"""llmdrop's nemotron-nas exports of the default model in transformers: each export is loaded
with `trust_remote_code` (the configuration and modeling files llmdrop writes into it) on the
CPU, and its logits are compared with llmdrop's for the same pruned model.

- float64 on both sides (transformers loads the export with dtype=float64; the modeling file
  computes in the weights' dtype; llmdrop runs `--dtype f64`): the goal, max |Δlogit| <= 1e-4
  (what is left is rounding of float64).
- float32 on both sides, of the export and of the source with the same plan: each float32
  run is also compared with the float64 one, which says how much of their distance is either
  side's float32 rounding (on a 30-layer model more than 1e-4, in transformers too).
Fails when the float64 runs miss the goal, when the float32 runs disagree by more than rounding
explains (1e-3), or when the export's Python files are not the repository's (rebuild llmdrop).
vLLM needs a GPU and is not run here.

    scripts/cross/check-engines.sh        # builds llmdrop, runs this with the reference venv
    $VENV/bin/python scripts/cross/check_nemotron.py [--llmdrop PATH]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import transformers

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("LLMDROP_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "llmdrop")
MODEL = CACHE / "SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPT = "The quick brown fox jumps over the lazy dog. In 1969, 3 astronauts flew to the Moon; print('hello')"
PLANS = [
    ("attention 6,7,9,22,25,26,28,29", "6,7,9,22,25,26,28,29", None),
    ("MLP 10,20", None, "10,20"),
    ("attention 6,7 + MLP 25,26", "6,7", "25,26"),
]
GOAL = 1e-4
# a modelling difference (RoPE, a norm, a skipped module) moves logits by far more than this
LIMIT = 1e-3
PY_DIR = ROOT / "crates" / "llmdrop" / "src" / "formats" / "nemotron_py"

torch.set_grad_enabled(False)


def default_bin():
    target = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
    return target / "release" / "llmdrop"


def plan_args(attn, mlp):
    return (["--drop-attn", attn] if attn else []) + (["--drop-mlp", mlp] if mlp else [])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llmdrop", type=Path, default=default_bin())
    a = ap.parse_args()

    def llmdrop(*args):
        return subprocess.run([str(a.llmdrop), *args], check=True, capture_output=True, text=True).stdout

    def ours(model, extra=(), dtype=np.float32):
        v = json.loads(llmdrop("logits", "--model", str(model), "--prompt", PROMPT, *extra))
        return v["ids"], np.array(v["logits"], dtype=dtype)

    tmp = Path(tempfile.mkdtemp())
    print(f"model {MODEL.name}, prompt of {len(PROMPT)} chars; transformers {transformers.__version__}, "
          f"torch {torch.__version__}, CPU, float64 and float32")
    results = {}
    worst = worst64 = 0.0
    for name, attn, mlp in PLANS:
        out = tmp / name.replace(" ", "_").replace(",", "-").replace("+", "")
        llmdrop("export", "--model", str(MODEL), "--format", "nemotron-nas", "--out", str(out), *plan_args(attn, mlp))
        for f in PY_DIR.glob("*.py"):
            if (out / f.name).read_text() != f.read_text():
                sys.exit(f"{out / f.name} is not {f}: rebuild llmdrop")
        load = transformers.AutoModelForCausalLM.from_pretrained
        m = load(str(out), trust_remote_code=True, dtype=torch.float32).eval()
        m64 = load(str(out), trust_remote_code=True, dtype=torch.float64).eval()
        kept_attn = sum(layer.self_attn is not None for layer in m.model.layers)
        kept_mlp = sum(layer.mlp is not None for layer in m.model.layers)
        ids, of_export = ours(out)
        ids_src, of_source = ours(MODEL, plan_args(attn, mlp))
        ids_64, of_export64 = ours(out, ["--dtype", "f64"], np.float64)
        assert ids == ids_src == ids_64
        got = m(torch.tensor([ids])).logits[0].numpy()
        exact = m64(torch.tensor([ids])).logits[0].numpy()
        d_export = float(np.abs(got - of_export).max())
        d_source = float(np.abs(got - of_source).max())
        f64_torch = float(np.abs(got - exact).max())
        f64_ours = float(np.abs(of_export - exact).max())
        d64 = float(np.abs(of_export64 - exact).max())
        agree = float(np.mean(got.argmax(-1) == of_export.argmax(-1)))
        gen = m.generate(torch.tensor([ids[:12]]), max_new_tokens=8, do_sample=False)[0, 12:].tolist()
        print(f"  {name:34s} {kept_attn:2d} attention / {kept_mlp:2d} MLP kept   "
              f"max |Δlogit| vs llmdrop (export) {d_export:.2e}, (source + plan) {d_source:.2e}   "
              f"same next token {100 * agree:5.1f}%")
        print(f"  {'':34s} float64: llmdrop vs transformers {d64:.2e}   "
              f"float64 vs float32: transformers {f64_torch:.2e}, llmdrop {f64_ours:.2e}")
        results[name] = {"float64_llmdrop_vs_transformers": d64,
                         "vs_export": d_export, "vs_source_plan": d_source, "argmax_agreement": agree,
                         "float64_vs_transformers_f32": f64_torch, "float64_vs_llmdrop": f64_ours,
                         "kept_attention": kept_attn, "kept_mlp": kept_mlp, "generated": gen}
        worst = max(worst, d_export, d_source)
        worst64 = max(worst64, d64)
    print(json.dumps(results))
    shutil.rmtree(tmp)
    print(f"max |Δlogit| llmdrop vs transformers, float64: {worst64:.2e} "
          f"({'within' if worst64 <= GOAL else 'above'} the goal {GOAL:.0e}); float32: {worst:.2e}")
    if worst64 > GOAL:
        sys.exit(f"float64: max |Δlogit| {worst64:.2e} is above the goal {GOAL:.0e}")
    if worst > LIMIT:
        sys.exit(f"float32: max |Δlogit| {worst:.2e} is more than rounding explains ({LIMIT:.0e})")


if __name__ == "__main__":
    main()
