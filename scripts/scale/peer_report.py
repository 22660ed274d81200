#!/usr/bin/env python3
"""Renders one scripts/scale/peer.sh run as markdown: llmdrop's layer-streamed scoring and
the transformers + accelerate disk-offload peer on the same tokens, same threads, same
machine — wall time, tokens/s, peak RSS, disk reads, and how far each one's similarities
lie from the reference table (llmdrop's f32 scores when the run has them).

Usage: peer_report.py RUN_DIR REFERENCE_SCORES_JSON
"""

import json
import os
import sys

from report import GIB, gnu_time

ROWS = [
    ("llmdrop-f32", "llmdrop `score --stream`, f32 (exact path)"),
    ("llmdrop-bf16mixed", "llmdrop `score --stream --dtype bf16-mixed`"),
    ("peer-float32", "transformers + accelerate disk offload, float32"),
    ("peer-bfloat16", "transformers + accelerate disk offload, bfloat16"),
]


def load(path):
    try:
        return json.load(open(path))
    except (OSError, ValueError):
        return None


def sims(doc):
    if doc is None:
        return None
    t = doc.get("table", doc)
    return {k: [float(v) for v in t[k]] for k in ("block", "attn", "mlp") if k in t}


def main():
    run, ref_path = sys.argv[1], sys.argv[2]
    ref = sims(load(ref_path))
    rows, tps = [], {}
    machine = None
    for name, what in ROWS:
        doc = load(os.path.join(run, f"{name}.json"))
        if doc is None or not os.path.exists(os.path.join(run, f"{name}.time")):
            continue
        secs, rss, inputs, cpu = gnu_time(os.path.join(run, f"{name}.time"))
        machine = machine or doc.get("machine")
        if "stopped" in doc:
            note = (f"**cannot run here**: resident memory reached {doc['rss_bytes'] / GIB:.1f} GiB "
                    f"while {'loading' if doc['phase'] == 'load' else 'computing'} "
                    f"(stopped at the {doc['rss_limit_bytes'] / GIB:.0f} GiB limit after {doc['seconds']:.0f} s)")
            rows.append((what, secs, cpu, rss, inputs, "—", note))
            continue
        s = sims(doc)
        diff = max(abs(p - q) for k in ref for p, q in zip(s[k], ref[k])) if ref and s else float("nan")
        tokens = doc.get("tokens") or doc["table"]["tokens"]
        t = tokens / secs  # end to end: load, read and compute
        tps[name] = t
        extra = f"load {doc['load_seconds']:.0f} s, forward {doc['seconds']:.0f} s" if "load_seconds" in doc else \
            f"{doc.get('gflops_per_sec', 0):.1f} GFLOP/s"
        rows.append((what, secs, cpu, rss, inputs, f"{t:.1f}", f"max \\|Δ sim\\| vs reference {diff:.1e}; {extra}"))
    if machine:
        print(f"Machine: {machine.get('cpu_model')} (family {machine.get('family')} model {machine.get('model')}), "
              f"{machine.get('logical_cpus')} logical CPUs.\n")
    print(f"Reference similarities: `{os.path.basename(ref_path)}`.\n")
    print("| run | wall | CPU time | peak RSS | read from disk | tokens/s (wall) | notes |")
    print("|---|---|---|---|---|---|---|")
    for what, secs, cpu, rss, inputs, t, note in rows:
        print(f"| {what} | {secs / 60:.1f} min | {cpu / 60:.1f} min | {rss / GIB:.2f} GiB | "
              f"{inputs / 1e9:.1f} GB | {t} | {note} |")
    print()
    for mine, peer, what in [("llmdrop-f32", "peer-float32", "f32 / float32"),
                             ("llmdrop-bf16mixed", "peer-bfloat16", "bf16-mixed / bfloat16")]:
        if mine in tps and peer in tps:
            print(f"llmdrop {what}, tokens/s end to end: {tps[mine] / tps[peer]:.2f}x  ")


if __name__ == "__main__":
    main()
