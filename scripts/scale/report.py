#!/usr/bin/env python3
"""Renders the numbers of one scripts/scale/demo.sh run as markdown (and, for a shape run
with fewer layers than the model has, the full model's time, memory and disk projected
from them, with the arithmetic).

Usage: report.py RUN_DIR SHAPE LAYERS FULL_LAYERS
"""

import json
import os
import re
import sys

GB = 1e9
GIB = 2**30
SHAPES = {
    "llama-8b": dict(hidden=4096, inter=14336, heads=32, kv=8, head_dim=128),
    "llama-70b": dict(hidden=8192, inter=28672, heads=64, kv=8, head_dim=128),
}
VOCAB = 128256


def gnu_time(path):
    """Wall seconds, peak RSS bytes, bytes read from storage, CPU seconds of a GNU `time -v` log."""
    t = open(path).read()
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", t).group(1)
    secs = 0.0
    for part in wall.split(":"):
        secs = secs * 60 + float(part)
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1)) * 1024
    inputs = int(re.search(r"File system inputs: (\d+)", t).group(1)) * 512
    user = float(re.search(r"User time \(seconds\): (\S+)", t).group(1))
    sys_ = float(re.search(r"System time \(seconds\): (\S+)", t).group(1))
    return secs, rss, inputs, user + sys_


def layer_params(s):
    h, i = s["hidden"], s["inter"]
    q, kv = s["heads"] * s["head_dim"], s["kv"] * s["head_dim"]
    attn = h * q * 2 + h * kv * 2
    return attn, 3 * h * i, 2 * h


def main():
    run, shape, layers, full = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    doc = {k: json.load(open(os.path.join(run, f"{k}.json"))) for k in ("score", "drop", "export", "ppl")}
    times = {k: gnu_time(os.path.join(run, f"{k}.time")) for k in doc}
    sizes = {}
    for line in open(os.path.join(run, "sizes.txt")):
        b, p = line.split("\t", 1)
        sizes[os.path.basename(p.strip())] = int(b)
    sc, dr, ex, pp = doc["score"], doc["drop"], doc["export"], doc["ppl"]
    m = sc["machine"]
    model_bytes = sizes[[k for k in sizes if k.endswith("-shape") or "-shape-" in k][0]]
    print(f"### {shape} shape, {layers} layers ({model_bytes / GB:.2f} GB bf16)\n")
    design = m.get("microarchitecture") or f"family {m.get('family')} model {m.get('model')}"
    print(
        f"Machine: {m.get('cpu_model')} ({design}; {', '.join(m.get('kernel_features', []))}), "
        f"{m.get('logical_cpus')} logical CPUs, {sc['threads']} threads; "
        f"FMA limit {sc['fma_peak_gflops']:.0f} GFLOP/s (measured in the score run).\n"
    )
    print("| step | wall | CPU time | peak RSS | read from disk | what |")
    print("|---|---|---|---|---|---|")
    tok = sc["table"]["tokens"]
    what = {
        "score": f"{tok} tokens, {sc['tokens_per_sec']:.1f} tokens/s, {sc['gflops_per_sec']:.1f} GFLOP/s "
        f"= {100 * sc['fraction_of_fma_peak']:.1f}% of the FMA limit; {sc['memory']['mode']}, "
        f"estimate {sc['memory']['need_bytes'] / GIB:.2f} GiB, spilled "
        f"{(sc['memory'].get('spill_bytes') or 0) / GIB:.2f} GiB",
        "drop": f"attention {dr['plan']['attn']} dropped (scores reused: {dr['scores_reused']}); "
        f"nemotron-nas {sizes.get('nemotron', 0) / GB:.2f} GB; reload max \\|Δlogit\\| {dr['reload_max_abs_diff']:.2e}",
        "export": f"GGUF q4_k (deci) {sizes.get('pruned-q4_k.gguf', 0) / GB:.2f} GB; reload "
        f"({'streamed' if ex['reload_streamed'] else 'held'}) max \\|Δlogit\\| {ex['reload_max_abs_diff']:.1e} "
        f"against the model rounded as stored; "
        f"same next token as the unrounded model {100 * ex['reload_argmax_agreement']:.0f}%",
        "ppl": f"pruned model: ppl {pp['ppl']:.1f} over {pp['tokens_scored']} tokens "
        f"({pp['windows']} windows of {pp['seq_len']}), {pp['memory']['mode']}",
    }
    for k in ("score", "drop", "export", "ppl"):
        secs, rss, inputs, cpu = times[k]
        print(f"| {k} | {secs:.0f} s | {cpu:.0f} s | {rss / GIB:.2f} GiB | {inputs / GB:.2f} GB | {what[k]} |")
    print()
    if layers == full:
        return
    # the full model, projected from this run
    s = SHAPES[shape]
    attn, mlp, norms = layer_params(s)
    per_layer = 2 * (attn + mlp + norms)
    ends = 2 * 2 * VOCAB * s["hidden"] + 2 * s["hidden"]
    t_layers = sc["seconds"]
    t_fixed = times["score"][0] - t_layers
    per = t_layers / layers
    h, seq, n = s["hidden"], sc["settings"]["seq_len"], sc["settings"]["samples"]
    spill = n * (full + 1) * seq * h * 4
    readback = (full + 1) * seq * h * 4
    rss = times["score"][1]
    print(f"Projected to all {full} layers (from this {layers}-layer run):\n")
    print(
        f"- score time: {t_fixed:.0f} s outside the layers + {full} x {per:.1f} s per layer "
        f"({t_layers:.0f} s / {layers}) = {t_fixed + full * per:.0f} s ({(t_fixed + full * per) / 3600:.1f} h) "
        f"at this run's share of the CPU"
    )
    cpu = times["score"][3] * t_layers / times["score"][0] / layers
    print(
        f"- score CPU time: {full} x {cpu:.1f} CPU-s per layer = {full * cpu:.0f} CPU-s, "
        f"{full * cpu / sc['threads']:.0f} s on {sc['threads']} unshared threads"
    )
    print(
        f"- score memory: one layer at a time, so the peak RSS stays {rss / GIB:.2f} GiB, unless the "
        f"consecutive matrix's read-back of one block ({full + 1} x {seq} x {h} x 4 B = "
        f"{readback / GIB:.2f} GiB) outweighs it: max = {max(rss, readback) / GIB:.2f} GiB; spilled to disk "
        f"{n} x {readback / GIB:.2f} GiB = {spill / GIB:.1f} GiB"
    )
    print(
        f"- model on disk: {ends / GB:.2f} GB (embedding + head) + {full} x {per_layer / GB:.3f} GB per layer "
        f"= {(ends + full * per_layer) / GB:.1f} GB bf16"
    )
    kept_attn = full - full // 4
    nem = ends + full * 2 * (mlp + norms) + kept_attn * 2 * attn
    print(
        f"- nemotron-nas export with a quarter of the attention layers dropped ({full // 4}): "
        f"{ends / GB:.2f} + {full} x {2 * (mlp + norms) / GB:.3f} (MLP) + {kept_attn} x {2 * attn / GB:.3f} "
        f"(attention) = {nem / GB:.1f} GB; GGUF q4_k about 0.28 x that = {0.28 * nem / GB:.1f} GB "
        f"(4.5 bits of 16)"
    )


if __name__ == "__main__":
    main()
