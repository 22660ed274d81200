#!/usr/bin/env python3
"""Whether two `llmdrop serve` binaries give the same bits: the same requests (greedy or
seeded; long prompts that take several prefill chunks; echo with log-probabilities; a
scoring set with a shared prefix) sent to each, alone, and the choices compared exactly.

    same_answers.py BIN_A BIN_B [--model PATH]

Prints one line per request (equal / DIFFERENT) and exits 1 when any differs.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import time

import requests


def bodies():
    rng = random.Random(1)
    ids = lambda n: [1] + [rng.randrange(1000, 40000) for _ in range(n - 1)]
    prefix = ids(600)
    return [
        {"prompt": ids(2000), "max_tokens": 16, "temperature": 0, "ignore_eos": True,
         "echo": True, "logprobs": 2},
        {"prompt": [ids(500) for _ in range(4)], "max_tokens": 1, "echo": True,
         "logprobs": 1, "temperature": 0},
        {"prompt": [prefix + ids(5)[1:] for _ in range(4)], "max_tokens": 1, "echo": True,
         "logprobs": 1, "temperature": 0},
        {"prompt": ids(700), "max_tokens": 40, "temperature": 0.8, "seed": 3,
         "ignore_eos": True, "logprobs": 1},
    ]


def answers(binary, model, port):
    server = subprocess.Popen([binary, "serve", "-q", "-m", model, "--port", str(port)],
                              stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                requests.get(f"{base}/v1/models", timeout=1).raise_for_status()
                break
            except requests.RequestException:
                time.sleep(0.2)
        out = []
        for b in bodies():
            r = requests.post(f"{base}/v1/completions", json=b, timeout=600)
            r.raise_for_status()
            out.append(r.json()["choices"])
        return out
    finally:
        server.terminate()
        server.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--model", default=os.path.expanduser(
        "~/.cache/llmdrop/SmolLM2-135M-Instruct.Q4_1.gguf"))
    args = ap.parse_args()
    a = answers(args.a, args.model, 8801)
    b = answers(args.b, args.model, 8802)
    same = True
    for k, (x, y) in enumerate(zip(a, b)):
        ok = json.dumps(x) == json.dumps(y)
        same &= ok
        print(f"request {k}: {'equal' if ok else 'DIFFERENT'}")
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
