#!/usr/bin/env python3
"""The longest pause of a running greedy stream of `llmdrop serve` while another client
sends a long prompt (a generation request, or a scoring set with --kind score).

    stream_gap.py LLMDROP_BIN [--model PATH] [--port 8791] [--long-tokens 2000]
                  [--kind generate|score] [--score-prompts 8] [--runs 3]

Starts `LLMDROP_BIN serve` on the port, warms it up (the stream's prompt and the long
request once each, alone), then per run: a streamed greedy completion (300 tokens,
ignore_eos); once 30 of its tokens have arrived, the long request (random token ids,
seeded: the same prompt every run and every binary). Reports, per run, the stream's median
gap between tokens before the long request, its longest gap while the long request runs
(from sending it to its answer, plus 0.5 s), and the long request's latency; then the
machine (CPU model, family/model, cores) and the load average. Prints one JSON document.
"""
import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time

import requests


def cpu():
    info = {}
    with open("/proc/cpuinfo") as f:
        for line in f:
            k, _, v = line.partition(":")
            k = k.strip()
            if k in ("model name", "cpu family", "model") and k not in info:
                info[k] = v.strip()
    info["cores"] = os.cpu_count()
    return info


def stream(base, times, n):
    body = {"prompt": "Once upon a time", "max_tokens": n, "temperature": 0,
            "ignore_eos": True, "stream": True}
    with requests.post(f"{base}/v1/completions", json=body, stream=True, timeout=600) as r:
        r.raise_for_status()
        for line in r.iter_lines(chunk_size=None):
            if line.startswith(b"data: {"):
                ev = json.loads(line[6:])
                if ev.get("choices"):
                    times.append(time.perf_counter())


def long_body(args):
    rng = random.Random(0)
    ids = lambda: [1] + [rng.randrange(1000, 40000) for _ in range(args.long_tokens - 1)]
    if args.kind == "generate":
        return {"prompt": ids(), "max_tokens": 16, "temperature": 0, "ignore_eos": True}
    return {"prompt": [ids() for _ in range(args.score_prompts)], "max_tokens": 0,
            "echo": True, "logprobs": 0}


def one_run(base, args, body):
    times = []
    t = threading.Thread(target=stream, args=(base, times, args.stream_tokens))
    t.start()
    while len(times) < 30:
        if not t.is_alive():
            sys.exit("the stream ended early")
        time.sleep(0.005)
    before = [b - a for a, b in zip(times, times[1:])]
    t0 = time.perf_counter()
    r = requests.post(f"{base}/v1/completions", json=body, timeout=600)
    t1 = time.perf_counter()
    r.raise_for_status()
    t.join()
    during = [b - a for a, b in zip(times, times[1:]) if b >= t0 and a <= t1 + 0.5]
    return {
        "median_gap_before_ms": round(1000 * statistics.median(before), 1),
        "max_gap_during_ms": round(1000 * max(during), 1),
        "tokens_during": len(during),
        "long_request_s": round(t1 - t0, 3),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin")
    ap.add_argument("--model", default=os.path.expanduser(
        "~/.cache/llmdrop/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--port", type=int, default=8791)
    ap.add_argument("--long-tokens", type=int, default=2000)
    ap.add_argument("--kind", choices=["generate", "score"], default="generate")
    ap.add_argument("--score-prompts", type=int, default=8)
    ap.add_argument("--stream-tokens", type=int, default=300)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    base = f"http://127.0.0.1:{args.port}"
    server = subprocess.Popen([args.bin, "serve", "-q", "-m", args.model, "--port",
                               str(args.port)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                requests.get(f"{base}/v1/models", timeout=1).raise_for_status()
                break
            except requests.RequestException:
                time.sleep(0.2)
        body = long_body(args)
        warm = time.perf_counter()
        requests.post(f"{base}/v1/completions", json=body, timeout=600).raise_for_status()
        alone = time.perf_counter() - warm
        stream(base, [], 8)
        runs = [one_run(base, args, body) for _ in range(args.runs)]
    finally:
        server.terminate()
        server.wait()
    print(json.dumps({
        "bin": args.bin, "kind": args.kind, "long_tokens": args.long_tokens,
        "score_prompts": args.score_prompts if args.kind == "score" else None,
        "long_request_alone_s": round(alone, 3), "runs": runs, "cpu": cpu(),
        "loadavg": open("/proc/loadavg").read().split()[:3],
    }, indent=1))


if __name__ == "__main__":
    main()
