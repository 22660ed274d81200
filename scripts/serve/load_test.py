#!/usr/bin/env python3
"""Load test of `llmdrop serve` (issue 15): C concurrent clients x N requests of mixed kinds
(log-likelihood batches, generation, chat, streaming, ~10% malformed), bounded in count
and time.

    load_test.py BASE_URL SERVER_PID [--clients 8] [--requests 50] [--seed 0]

Every valid request is first answered once, alone (the offline answer); under load each
answer must equal it (ids and times aside), each malformed one must get a 4xx with an
OpenAI error object, and the server must stay up. Prints p50 / p99 latency, generated
tokens per second, and the server's RSS before, after the warm-up and after the load.
Exits 1 on any mismatch or failure.
"""
import argparse
import json
import random
import statistics
import sys
import threading
import time

import requests


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def bodies(tok):
    """The valid requests: (path, body)."""
    qs = ["The capital of France is", "Water boils at", "The opposite of hot is",
          "Q: What is 2 + 2?\nA:", "Once upon a time", "The largest planet is"]
    out = []
    for q in qs:
        ctx = tok(q)
        conts = [tok(q + c)[len(ctx):] for c in [" Paris", " cold", " four", " Jupiter"]]
        out.append(("/v1/completions", {"prompt": [ctx + c for c in conts], "max_tokens": 1,
                                        "echo": True, "logprobs": 1, "temperature": 0, "seed": 1234}))
        out.append(("/v1/completions", {"prompt": q, "max_tokens": 32, "temperature": 0}))
        out.append(("/v1/completions", {"prompt": q, "max_tokens": 24, "temperature": 0.8, "seed": 7,
                                        "stream": True}))
        out.append(("/v1/chat/completions", {"messages": [{"role": "user", "content": q}],
                                             "max_tokens": 32, "temperature": 0}))
        out.append(("/v1/chat/completions", {"messages": [{"role": "user", "content": q}],
                                             "max_tokens": 24, "temperature": 0, "stream": True}))
    return out


MALFORMED = [
    ("/v1/completions", b'{"prompt": '),
    ("/v1/completions", b'{"prompt": 5}'),
    ("/v1/completions", b'{"prompt": "x", "n": 3}'),
    ("/v1/completions", b'{"prompt": [1, 99999999]}'),
    ("/v1/completions", b'[]'),
    ("/v1/chat/completions", b'{"messages": "hi"}'),
    ("/v1/completions", b'{"prompt": "x", "max_tokens": -4}'),
]


def call(base, path, body):
    """(status, comparable answer, generated tokens)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    stream = isinstance(body, dict) and body.get("stream")
    r = requests.post(base + path, data=data, headers={"Content-Type": "application/json"},
                      stream=bool(stream), timeout=300)
    if r.status_code != 200:
        return r.status_code, r.json(), 0
    if stream:
        frames = []
        for line in r.iter_lines():
            if line.startswith(b"data: "):
                payload = line[6:]
                if payload == b"[DONE]":
                    break
                frames.append(json.loads(payload))
        for f in frames:
            f.pop("id", None), f.pop("created", None)
        n = sum(1 for f in frames if f["choices"] and f["choices"][0].get("finish_reason") is None
                and (f["choices"][0].get("text") or f["choices"][0].get("delta", {}).get("content")))
        return 200, frames, n
    v = r.json()
    v.pop("id", None), v.pop("created", None)
    return 200, v, v["usage"]["completion_tokens"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("pid", type=int)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    base = a.base.rstrip("/")

    def tok(text):
        return requests.post(base + "/tokenize", json={"prompt": text, "add_special_tokens": False}).json()["tokens"]

    rss0 = rss_kib(a.pid)
    valid = bodies(tok)
    offline = [call(base, p, b) for p, b in valid]
    assert all(s == 200 for s, _, _ in offline), [o for o in offline if o[0] != 200]
    rss_warm = rss_kib(a.pid)

    rng = random.Random(a.seed)
    plans = [[("bad", rng.randrange(len(MALFORMED))) if rng.random() < 0.1 else ("ok", rng.randrange(len(valid)))
              for _ in range(a.requests)] for _ in range(a.clients)]
    lat, errors, tokens = [], [], [0]
    lock = threading.Lock()

    def client(plan):
        for kind, i in plan:
            t0 = time.perf_counter()
            try:
                if kind == "ok":
                    s, ans, n = call(base, *valid[i])
                    ok = s == 200 and ans == offline[i][1]
                    why = f"valid request {i}: status {s}, answer differs" if not ok else ""
                else:
                    s, ans, n = call(base, *MALFORMED[i])
                    ok = 400 <= s < 500 and "message" in ans.get("error", {})
                    why = f"malformed request {i}: status {s} {ans}" if not ok else ""
            except Exception as e:  # noqa: BLE001 - any failure is a finding
                ok, why, n = False, f"{kind} {i}: {e!r}", 0
            dt = time.perf_counter() - t0
            with lock:
                lat.append(dt)
                tokens[0] += n
                if not ok:
                    errors.append(why)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(p,)) for p in plans]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    rss1 = rss_kib(a.pid)
    up = requests.get(base + "/health").status_code == 200
    lat.sort()
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
    print(f"{a.clients} clients x {a.requests} requests: {len(lat)} answered in {wall:.1f} s, "
          f"{len(errors)} failures, server up: {up}")
    print(f"latency p50 {p(0.5) * 1000:.0f} ms, p99 {p(0.99) * 1000:.0f} ms, mean {statistics.mean(lat) * 1000:.0f} ms")
    print(f"generated tokens: {tokens[0]} ({tokens[0] / wall:.1f} tokens/s under load)")
    print(f"server RSS: {rss0 / 1024:.0f} MiB before, {rss_warm / 1024:.0f} MiB after warm-up, {rss1 / 1024:.0f} MiB after the load")
    for e in errors[:10]:
        print("  " + e)
    return 0 if not errors and up else 1


if __name__ == "__main__":
    sys.exit(main())
