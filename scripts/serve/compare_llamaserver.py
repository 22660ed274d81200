#!/usr/bin/env python3
"""Generation throughput of `llmdrop serve` against llama.cpp's `llama-server` on the same
GGUF, with the same threads, in the same run (issue 15).

    compare_llamaserver.py --llmdrop BIN --llama-server BIN --model GGUF
        [--threads 1,2] [--clients 1,8] [--max-tokens 64] [--requests 3] [--rounds 3]

For each thread count both servers are started (llmdrop with `--dtype native`, llama-server
with `-t T -tb T -np 8 -nr`: its AMX weight repacking crashed on the machine measured, and Q4_1
has no other repacked form on x86), then for several rounds, alternating which server goes first,
C clients each send R greedy completion requests one after another (temperature 0,
`ignore_eos`, `max_tokens` fixed, a different prompt per client). Aggregate throughput is
the generated tokens (`usage.completion_tokens`) of all clients over the wall time of the
phase. Prints one row per (threads, clients): the median tokens/s of each server over the
rounds and the ratio. Also checks that llmdrop's answers under load equal its answers to
the same requests sent alone (exits 1 if not).
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

PROMPTS = [
    "The capital of France is", "Once upon a time, in a small village,",
    "Water boils at", "The three primary colors are", "In 1969, the first person to walk",
    "A good recipe for bread starts with", "The largest planet in the solar system",
    "Machine learning is", "The river flowed quietly past", "My favourite book is",
    "The theory of relativity says", "To make a cup of tea, first", "The old lighthouse keeper",
    "Photosynthesis is the process", "The stock market today", "Dear diary, today I",
]


def cpu_name():
    """The model name with family and model number (a virtual CPU's name is often generic)."""
    info = {}
    with open("/proc/cpuinfo") as f:
        for line in f:
            if ":" in line:
                k, v = (x.strip() for x in line.split(":", 1))
                info.setdefault(k, v)
    return f"{info.get('model name', 'unknown CPU')} (family {info.get('cpu family', '?')} model {info.get('model', '?')})"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url, body, timeout=600):
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def wait_healthy(base, proc, seconds=300):
    end = time.time() + seconds
    while time.time() < end:
        if proc.poll() is not None:
            sys.exit(f"server exited early ({proc.returncode}): {base}")
        try:
            with urllib.request.urlopen(base + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except Exception:
            pass
        time.sleep(0.3)
    sys.exit(f"server not healthy after {seconds} s: {base}")


def body(i, max_tokens):
    return {"prompt": PROMPTS[i % len(PROMPTS)], "max_tokens": max_tokens, "temperature": 0,
            "ignore_eos": True, "model": "m"}


def phase(base, clients, requests, max_tokens):
    """C clients x R requests; returns (tokens/s, {client: [texts]})."""
    texts = {c: [] for c in range(clients)}
    tokens = [0] * clients
    errors = []

    def client(c):
        try:
            for _ in range(requests):
                r = post(base + "/v1/completions", body(c, max_tokens))
                tokens[c] += r["usage"]["completion_tokens"]
                texts[c].append(r["choices"][0]["text"])
        except Exception as e:  # reported below
            errors.append(f"client {c}: {e}")

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        sys.exit("; ".join(errors))
    return sum(tokens) / wall, texts


def start(cmd, log):
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llmdrop", required=True)
    ap.add_argument("--llama-server", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--clients", default="1,8")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--requests", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--log", default="/tmp/compare_llamaserver.log")
    a = ap.parse_args()
    clients = [int(c) for c in a.clients.split(",")]
    slots = max(clients)
    print(f"CPU: {cpu_name()}; model {os.path.basename(a.model)}; greedy, max_tokens "
          f"{a.max_tokens}, ignore_eos; {a.requests} requests per client; {a.rounds} rounds")
    failed = False
    log = open(a.log, "w")
    for t in [int(x) for x in a.threads.split(",")]:
        p1, p2 = free_port(), free_port()
        ours = start([a.llmdrop, "serve", "--model", a.model, "--dtype", "native",
                      "--threads", str(t), "--port", str(p1)], log)
        theirs = start([a.llama_server, "-m", a.model, "-t", str(t), "-tb", str(t),
                        "-np", str(slots), "-c", str(slots * 512), "--host", "127.0.0.1",
                        "--port", str(p2), "-nr"], log)
        servers = {"llmdrop": f"http://127.0.0.1:{p1}", "llama-server": f"http://127.0.0.1:{p2}"}
        try:
            wait_healthy(servers["llmdrop"], ours)
            wait_healthy(servers["llama-server"], theirs)
            alone = {}
            for i in range(slots):  # warm-up, and llmdrop's answers alone
                alone[i] = post(servers["llmdrop"] + "/v1/completions", body(i, a.max_tokens))["choices"][0]["text"]
                post(servers["llama-server"] + "/v1/completions", body(i, a.max_tokens))
            rates = {(name, c): [] for name in servers for c in clients}
            for r in range(a.rounds):
                order = list(servers) if r % 2 == 0 else list(servers)[::-1]
                for c in clients:
                    for name in order:
                        rate, texts = phase(servers[name], c, a.requests, a.max_tokens)
                        rates[(name, c)].append(rate)
                        if name == "llmdrop":
                            bad = [i for i, ts in texts.items() if any(x != alone[i] for x in ts)]
                            if bad:
                                print(f"MISMATCH: llmdrop under load, clients {bad} differ from alone")
                                failed = True
            for c in clients:
                m1 = statistics.median(rates[("llmdrop", c)])
                m2 = statistics.median(rates[("llama-server", c)])
                per = " ".join(f"{x:.1f}/{y:.1f}" for x, y in zip(rates[("llmdrop", c)], rates[("llama-server", c)]))
                print(f"threads {t}, clients {c}: llmdrop {m1:.1f} tok/s, llama-server {m2:.1f} tok/s, "
                      f"ratio {m1 / m2:.2f}x (rounds llmdrop/llama-server: {per})", flush=True)
        finally:
            for p in (ours, theirs):
                p.terminate()
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
