#!/usr/bin/env python3
"""Reliability audit of a built llmdrop binary (issue 12): careless and hostile inputs.

Runs the binary over a matrix of inputs, each case in a fresh temp dir with a timeout and
an address-space cap, and judges every run:

  PANIC     exit 101 or "panicked" on stderr
  ABORT     killed by a signal it did not ask for (SIGABRT, SIGSEGV, SIGBUS, SIGKILL...)
  HANG      still running at the timeout (killed)
  LOSS      an input or an unrelated file changed or vanished, or a file appeared in an
            input folder
  MEM       an input under 1 MB took more than 256 MiB peak RSS (or the run hit the
            harness's address-space cap: "memory allocation of N bytes failed"); inputs of
            1 MB or more: more than 256 MiB + 4 x their size
  LEFTOVER  something named .*llmdrop-*, *.tmp-* or .*.old remains after the run
  CTRL      raw control characters (ESC, BEL, ...) on stderr, or on stdout of inspect
  FAIL      an exit code or result the case does not accept (exit 2 without an
            "llmdrop: " message -- or clap's "error: " for a malformed argument --, exit 0
            where an error is required, wrong signal exit...)
  OK        otherwise

Standard library only. Usage:
  python3 scripts/audit/audit.py --bin target/release/llmdrop [--out DIR] [--quick]
Writes DIR/audit.json (every case) and prints a summary. Exit status: 0 when every case is
OK, 1 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import re
import resource
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "tests" / "fixtures" / "tiny"
CACHE = Path.home() / ".cache" / "llmdrop"
DEFAULT_TEXT = CACHE / "text" / "docutils-0.21.2" / "docs" / "user" / "rst" / "quickstart.txt"
HF_FILES = ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json")
HF_SIZE = sum((TINY / "llama" / f).stat().st_size for f in HF_FILES)   # the tiny llama folder

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
SMALL_INPUT = 1 * 1000 * 1000          # "under 1 MB"
SMALL_RSS = 256 * MiB
FAST = 15   # timeout (s) for cases whose right answer is an immediate refusal (FIFOs...)
BIG_TIMEOUT = 180   # the 48 MiB metadata array: slow, not hung (about 50 s on a debug build)
VERDICTS = ("PANIC", "ABORT", "HANG", "LOSS", "MEM", "LEFTOVER", "CTRL", "FAIL", "OK")
LEFTOVER_RE = re.compile(r"^\..*llmdrop-|\.tmp-|^\..*\.old$")
CTRL_RE = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


# ---------------------------------------------------------------------------------------
# GGUF v3: a small parser and writer
# ---------------------------------------------------------------------------------------

U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
SCALAR = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f",
          BOOL: "<?", U64: "<Q", I64: "<q", F64: "<d"}


class Raw:
    """Bytes emitted verbatim where a value (after its type), key/value pair or tensor
    info would go."""

    def __init__(self, b: bytes):
        self.b = b


def _gstr(s) -> bytes:
    b = s.encode("utf-8", "surrogateescape") if isinstance(s, str) else bytes(s)
    return struct.pack("<Q", len(b)) + b


def _gval(t: int, v) -> bytes:
    if isinstance(v, Raw):
        return v.b
    if t in SCALAR:
        return struct.pack(SCALAR[t], v)
    if t == STR:
        return _gstr(v)
    if t == ARR:
        et, items = v
        return struct.pack("<IQ", et, len(items)) + b"".join(_gval(et, x) for x in items)
    raise ValueError(f"no writer for type {t}")


class Gguf:
    def __init__(self, data: bytes):
        self.magic = data[:4]
        p = 4
        self.version, n_t, n_kv = struct.unpack_from("<IQQ", data, p)
        p += 20
        self.kvs: list = []      # [key, type, value] or Raw
        for _ in range(n_kv):
            k, p = self._str(data, p)
            (t,) = struct.unpack_from("<I", data, p)
            p += 4
            v, p = self._val(data, t, p)
            self.kvs.append([k, t, v])
        self.tensors: list[dict] = []
        for _ in range(n_t):
            name, p = self._str(data, p)
            (nd,) = struct.unpack_from("<I", data, p)
            p += 4
            dims = list(struct.unpack_from(f"<{nd}Q", data, p))
            p += 8 * nd
            ty, off = struct.unpack_from("<IQ", data, p)
            p += 12
            self.tensors.append({"name": name, "dims": dims, "type": ty, "offset": off})
        self.header_end = p
        align = self.get("general.alignment") or 32
        start = -(-p // align) * align
        self.blob = data[start:]
        self.tc_override = None
        self.kc_override = None

    @staticmethod
    def _str(d, p):
        (n,) = struct.unpack_from("<Q", d, p)
        return d[p + 8:p + 8 + n].decode("utf-8", "surrogateescape"), p + 8 + n

    def _val(self, d, t, p):
        if t in SCALAR:
            return struct.unpack_from(SCALAR[t], d, p)[0], p + struct.calcsize(SCALAR[t])
        if t == STR:
            return self._str(d, p)
        et, n = struct.unpack_from("<IQ", d, p)
        p += 12
        items = []
        for _ in range(n):
            x, p = self._val(d, et, p)
            items.append(x)
        return (et, items), p

    def copy(self) -> "Gguf":
        g = Gguf.__new__(Gguf)
        g.__dict__.update(self.__dict__)
        g.kvs = [list(kv) if isinstance(kv, list) else kv for kv in self.kvs]
        g.tensors = [dict(t) for t in self.tensors]
        return g

    def get(self, key):
        for kv in self.kvs:
            if isinstance(kv, list) and kv[0] == key:
                return kv[2]
        return None

    def set(self, key, t, v):
        for kv in self.kvs:
            if isinstance(kv, list) and kv[0] == key:
                kv[1], kv[2] = t, v
                return self
        self.kvs.append([key, t, v])
        return self

    def remove(self, key):
        self.kvs = [kv for kv in self.kvs if not (isinstance(kv, list) and kv[0] == key)]
        return self

    def tensor(self, name) -> dict:
        return next(t for t in self.tensors if t["name"] == name)

    def write(self, pad_align: int | None = None) -> bytes:
        """Serialises; data starts at the header end rounded up to `pad_align` (default:
        general.alignment when it is a sane number, else 32)."""
        if pad_align is None:
            a = self.get("general.alignment")
            pad_align = a if isinstance(a, int) and 0 < a <= 4096 else 32
        out = [self.magic, struct.pack("<I", self.version),
               struct.pack("<Q", len(self.tensors) if self.tc_override is None else self.tc_override),
               struct.pack("<Q", len(self.kvs) if self.kc_override is None else self.kc_override)]
        for kv in self.kvs:
            if isinstance(kv, Raw):
                out.append(kv.b)
            else:
                out += [_gstr(kv[0]), struct.pack("<I", kv[1]), _gval(kv[1], kv[2])]
        for t in self.tensors:
            if "raw" in t:
                out.append(t["raw"])
                continue
            nd = t.get("n_dims", len(t["dims"]))
            out += [_gstr(t["name"]), struct.pack("<I", nd),
                    b"".join(struct.pack("<Q", x & (2**64 - 1)) for x in t["dims"]),
                    struct.pack("<IQ", t["type"], t["offset"])]
        head = b"".join(out)
        pad = (-len(head)) % pad_align if pad_align > 0 else 0
        return head + b"\0" * pad + self.blob


# ---------------------------------------------------------------------------------------
# safetensors
# ---------------------------------------------------------------------------------------

def st_parse(b: bytes):
    (n,) = struct.unpack_from("<Q", b, 0)
    return json.loads(b[8:8 + n]), b[8 + n:]


def st_write(header: dict, data: bytes) -> bytes:
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((-len(h)) % 8)
    return struct.pack("<Q", len(h)) + h + data


def st_poison(b: bytes, tensor: str, value: float, count: int = 4) -> bytes:
    """Writes `value` into the first `count` f32 elements of `tensor`."""
    h, data = st_parse(b)
    start = h[tensor]["data_offsets"][0]
    data = bytearray(data)
    for i in range(count):
        struct.pack_into("<f", data, start + 4 * i, value)
    return b[:len(b) - len(data)] + bytes(data)


def st_zero_head_dim(b: bytes) -> bytes:
    """Consistent zero-width attention: q/k/v [0, hidden], o [hidden, 0], no data."""
    h, data = st_parse(b)
    meta = h.pop("__metadata__", None)
    out, parts, off = {}, [], 0
    if meta is not None:
        out["__metadata__"] = meta
    for name, info in sorted(h.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        a, z = info["data_offsets"]
        chunk = data[a:z]
        shape = list(info["shape"])
        if re.search(r"\.(q|k|v)_proj\.weight$", name):
            shape, chunk = [0, shape[1]], b""
        elif name.endswith(".o_proj.weight"):
            shape, chunk = [shape[0], 0], b""
        out[name] = {"dtype": info["dtype"], "shape": shape, "data_offsets": [off, off + len(chunk)]}
        parts.append(chunk)
        off += len(chunk)
    return st_write(out, b"".join(parts))


# ---------------------------------------------------------------------------------------
# cases
# ---------------------------------------------------------------------------------------

@dataclass
class Case:
    group: str
    name: str
    input: str                          # what the input is, in words
    prepare: Callable                   # (case dir: Path) -> argv after the binary
    expect: frozenset = frozenset({0, 2})
    mem_rule: str | None = "small"      # "small", "ratio" or None
    input_size: int = 0                 # bytes of the main input, for the memory rule
    input_dirs: tuple = ("model",)      # folders (relative) nobody may write into
    may_change: tuple = ()              # relative paths allowed to change
    check: Callable | None = None       # (Result, dir) -> list of (verdict, detail)
    runner: Callable | None = None      # custom run: (Case, dir, ctx) -> Result
    timeout: float | None = None
    cap: int | None = None              # address-space cap in bytes
    stdout_ctrl: bool = False           # stdout must carry no raw control characters


@dataclass
class Result:
    argv: list
    rc: int | None = None
    sig: int | None = None
    timed_out: bool = False
    rss_kib: int = 0
    seconds: float = 0.0
    stdout: bytes = b""
    stderr: bytes = b""
    notes: list = field(default_factory=list)
    problems: list = field(default_factory=list)   # (verdict, detail) from custom runners


class Ctx:
    def __init__(self, args):
        self.bin = str(Path(args.bin).resolve())
        self.timeout = args.timeout
        self.cap = int(args.mem_cap_gib * GiB)
        self.big_cap = max(self.cap, int(args.big_cap_gib * GiB))
        self.text = Path(args.text)
        self.quick = args.quick
        self.env = dict(os.environ, RAYON_NUM_THREADS="1")
        self.env.pop("RUST_BACKTRACE", None)
        self.env.pop("RUST_LOG", None)
        self.work = Path(tempfile.mkdtemp(prefix="llmdrop-audit-", dir=args.tmp))
        self.mutants = self.work / "mutants"
        self.mutants.mkdir()
        self.keep = args.keep
        self.real = args.real_model


def spawn(ctx: Ctx, argv, cwd: Path, timeout: float, cap: int, poll=None,
          stdout_lines: int | None = None) -> Result:
    """Runs argv (binary first) in cwd under an address-space cap; peak RSS from wait4.

    `poll(pid, elapsed)` is called while it runs (for signals). With `stdout_lines`, stdout
    is a pipe closed after that many lines, as `| head -N` does."""
    res = Result(argv=list(argv))
    out_p, err_p = cwd / ".audit-stdout", cwd / ".audit-stderr"
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))
    try:
        with open(out_p, "wb") as so, open(err_p, "wb") as se:
            p = subprocess.Popen(argv, cwd=cwd, env=ctx.env, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE if stdout_lines else so, stderr=se,
                                 start_new_session=True)
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    t0 = time.monotonic()
    piped = b""
    if stdout_lines:
        fd = p.stdout.fileno()
        while piped.count(b"\n") < stdout_lines and time.monotonic() - t0 < timeout:
            r, _, _ = select.select([fd], [], [], 0.05)
            if r:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                piped += chunk
        p.stdout.close()
        piped = b"".join(piped.splitlines(keepends=True)[:stdout_lines])
    nap = 0.002
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        el = time.monotonic() - t0
        if poll is not None:
            poll(p.pid, el)
        if el > timeout:
            res.timed_out = True
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            pid, status, ru = os.wait4(p.pid, 0)
            break
        time.sleep(nap)
        nap = min(nap * 1.5, 0.05 if poll is None else 0.005)
    res.seconds = round(time.monotonic() - t0, 3)
    p.returncode = 0   # reaped here; keep Popen from waiting again
    res.rss_kib = ru.ru_maxrss
    if os.WIFSIGNALED(status):
        res.sig = os.WTERMSIG(status)
    else:
        res.rc = os.WEXITSTATUS(status)
    res.stdout = piped if stdout_lines else tail_bytes(out_p, 1 << 20)
    res.stderr = err_p.read_bytes()
    out_p.unlink(missing_ok=True)
    err_p.unlink(missing_ok=True)
    return res


def tail_bytes(p: Path, n: int) -> bytes:
    with open(p, "rb") as f:
        f.seek(max(0, os.fstat(f.fileno()).st_size - n))
        return f.read()


def snapshot(root: Path) -> dict:
    snap = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            rel = str(p.relative_to(root))
            if rel.startswith(".audit-"):
                continue
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                continue
            if os.path.islink(p):
                snap[rel] = "link:" + os.readlink(p)
            elif p.is_dir():
                snap[rel] = "dir"
            elif p.is_file() and st.st_size > 64 * MiB:   # sparse or big: size and mtime
                snap[rel] = f"stat:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"
            elif p.is_file():
                h = hashlib.sha256()
                with open(p, "rb") as f:
                    for blk in iter(lambda: f.read(1 << 20), b""):
                        h.update(blk)
                snap[rel] = h.hexdigest()
            else:
                snap[rel] = f"special:{st.st_mode:o}"
    return snap


def leftovers(root: Path) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            if LEFTOVER_RE.search(n):
                found.append(str((Path(dirpath) / n).relative_to(root)))
    return sorted(found)


def clip(b: bytes, n: int) -> str:
    s = b.decode("utf-8", "backslashreplace")
    return s if len(s) <= n else "…" + s[-n:]


def judge(case: Case, res: Result, before: dict, after: dict, d: Path) -> list:
    probs = list(res.problems)
    err = res.stderr
    if res.rc == 101 or b"panicked" in err:
        line = next((l for l in err.decode("utf-8", "replace").splitlines() if "panicked" in l), "")
        probs.append(("PANIC", f"exit {res.rc}: {line[:300]}"))
    alloc_fail = re.search(rb"memory allocation of (\d+) bytes failed", err)
    if res.timed_out:
        probs.append(("HANG", f"killed after {res.seconds:.0f} s"))
    elif res.sig is not None and not case.runner:
        if alloc_fail:
            probs.append(("MEM", f"aborted at the harness's address-space cap: allocation of "
                                 f"{int(alloc_fail.group(1)):,} bytes failed"))
        else:
            probs.append(("ABORT", f"killed by {signal.Signals(res.sig).name}: "
                                   f"{clip(err, 200).strip()}"))
    # data loss: everything that was there before must be there, unchanged
    for rel, h in before.items():
        if rel in case.may_change or any(rel.startswith(m + "/") for m in case.may_change):
            continue
        if rel not in after:
            probs.append(("LOSS", f"{rel} vanished"))
        elif after[rel] != h:
            probs.append(("LOSS", f"{rel} changed"))
    for rel in after:
        if rel not in before and any(rel.startswith(i.rstrip("/") + "/") for i in case.input_dirs):
            probs.append(("LOSS", f"{rel} written into an input folder"))
    # memory
    rss = res.rss_kib * KiB
    if case.mem_rule == "small" and case.input_size < SMALL_INPUT and rss > SMALL_RSS:
        probs.append(("MEM", f"peak RSS {rss / MiB:.0f} MiB from a {case.input_size:,}-byte input"))
    if case.mem_rule == "ratio" and rss > SMALL_RSS + 4 * case.input_size:
        probs.append(("MEM", f"peak RSS {rss / MiB:.0f} MiB from a {case.input_size / MiB:.0f} MiB input "
                             f"(> 256 MiB + 4x)"))
    left = [l for l in leftovers(d) if l not in before]
    if left:
        probs.append(("LEFTOVER", ", ".join(left[:5])))
    if CTRL_RE.search(err) or (case.stdout_ctrl and CTRL_RE.search(res.stdout)):
        where = "stderr" if CTRL_RE.search(err) else "stdout"
        probs.append(("CTRL", f"raw control characters on {where}"))
    checked_failed = (res.rc == 1 and len(res.argv) > 1 and res.argv[1] in ("ppl", "eval", "sweep")
                      and 1 not in case.expect)
    if checked_failed:   # exit 1: "checked and failed", a result that is not a number
        if re.search(rb"(^|\n)llmdrop: ", err):
            res.notes.append("exit 1 (checked and failed)")
        else:
            probs.append(("FAIL", f"exit 1 without an 'llmdrop: ' message: {clip(err, 200).strip()}"))
    elif res.rc is not None and res.rc != 101 and not case.runner:
        if res.rc not in case.expect:
            probs.append(("FAIL", f"exit {res.rc}, expected {sorted(case.expect)}: "
                                  f"{clip(err, 200).strip()}"))
        elif res.rc == 2 and not re.search(rb"(^|\n)(llmdrop: |error: )", err):
            probs.append(("FAIL", f"exit 2 without an 'llmdrop: ' message: {clip(err, 200).strip()}"))
    if case.check and not res.timed_out:
        probs += case.check(res, d)
    return probs


def verdict_of(probs) -> str:
    if not probs:
        return "OK"
    return min((p[0] for p in probs), key=VERDICTS.index)


def wait_for_binary(path: str, patience: float = 600) -> bool:
    """A binary being rebuilt vanishes for a while: wait for it to come back."""
    t0 = time.monotonic()
    while not os.access(path, os.X_OK):
        if time.monotonic() - t0 > patience:
            return False
        time.sleep(5)
    return True


def run_case(ctx: Ctx, case: Case, idx: int) -> dict:
    wait_for_binary(ctx.bin)
    d = ctx.work / f"{idx:04d}"
    d.mkdir()
    try:
        argv = case.prepare(d)
        before = snapshot(d)
        if case.runner:
            res = case.runner(case, d, ctx, argv)
        else:
            res = spawn(ctx, [ctx.bin] + argv, d, case.timeout or ctx.timeout, case.cap or ctx.cap)
        after = snapshot(d)
        probs = judge(case, res, before, after, d)
    except Exception as e:  # a harness error is reported, not hidden
        res, probs = Result(argv=[]), [("FAIL", f"harness error: {type(e).__name__}: {e}")]
    finally:
        if not ctx.keep:
            shutil.rmtree(d, ignore_errors=True)
    return {
        "group": case.group, "name": case.name, "input": case.input,
        "input_bytes": case.input_size,
        "command": " ".join(shlex_quote(a) for a in [Path(ctx.bin).name] + [
            a.replace(str(d), "$CASE") for a in res.argv[1:]]),
        "exit_code": res.rc, "signal": signal.Signals(res.sig).name if res.sig else None,
        "timed_out": res.timed_out, "peak_rss_kib": res.rss_kib, "seconds": res.seconds,
        "verdict": verdict_of(probs), "problems": [f"{v}: {m}" for v, m in probs],
        "notes": res.notes,
        "stderr_tail": clip(res.stderr, 600), "stdout_tail": clip(res.stdout, 300),
    }


def shlex_quote(s: str) -> str:
    import shlex
    return shlex.quote(s)


# ---------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------

def put_text(ctx: Ctx, d: Path) -> str:
    shutil.copyfile(ctx.text, d / "data.txt")
    return str(d / "data.txt")


def put_hf(d: Path, kind: str = "llama", edit: Callable | None = None) -> str:
    m = d / "model"
    m.mkdir()
    for f in HF_FILES:
        if (TINY / kind / f).exists():
            shutil.copyfile(TINY / kind / f, m / f)
    if edit:
        edit(m)
    return str(m)


def put_file(d: Path, src: Path, name: str) -> str:
    (d / "model").mkdir(exist_ok=True)
    shutil.copyfile(src, d / "model" / name)
    return str(d / "model" / name)


def model_cmds(ctx: Ctx, quick_cmds=("inspect", "generate", "score")):
    """(label, argv builder) for the per-mutant commands."""
    cmds = {
        "inspect": lambda m, t, d: ["inspect", "--model", m],
        "generate": lambda m, t, d: ["generate", "--model", m, "--prompt", "hi", "--max-tokens", "2"],
        "ppl": lambda m, t, d: ["ppl", "--model", m, "--data", t, "--seq-len", "32"],
        "score": lambda m, t, d: ["score", "--model", m, "--data", t, "--samples", "2",
                                  "--seq-len", "32", "--out", str(d / "out" / "s.json")],
    }
    names = quick_cmds if ctx.quick else ("inspect", "generate", "ppl", "score")
    return [(n, cmds[n]) for n in names]


def mutant_cases(ctx: Ctx, group: str, name: str, desc: str, install: Callable, size: int,
                 cmds=None, **kw) -> list[Case]:
    """One case per command for a mutated model; install(d) -> model path."""
    out = []
    for label, build in (cmds or model_cmds(ctx)):
        def prepare(d, build=build):
            m = install(d)
            (d / "out").mkdir()
            return build(m, put_text(ctx, d), d)
        out.append(Case(group, f"{name} / {label}", desc, prepare, input_size=size,
                        stdout_ctrl=(label == "inspect"), **kw))
    return out


# ---- group: valid baselines ------------------------------------------------------------

def valid_cases(ctx: Ctx) -> list[Case]:
    cases = []
    models = [("llama", "hf"), ("llama", "gguf"), ("qwen2", "hf"), ("qwen2", "gguf"),
              ("mistral", "hf"), ("qwen3", "hf")]
    if ctx.quick:
        models = [("llama", "hf"), ("llama", "gguf"), ("qwen3", "hf")]
    for kind, fmt in models:
        if fmt == "hf":
            inst = lambda d, kind=kind: put_hf(d, kind)
            size = sum((TINY / kind / f).stat().st_size for f in HF_FILES if (TINY / kind / f).exists())
        else:
            inst = lambda d, kind=kind: put_file(d, TINY / kind / "model.gguf", "model.gguf")
            size = (TINY / kind / "model.gguf").stat().st_size
        cases += mutant_cases(ctx, "valid", f"tiny {kind} {fmt}", f"tiny {kind} ({fmt}), unchanged",
                              inst, size, cmds=model_cmds(ctx, ("inspect", "generate", "ppl", "score")),
                              expect=frozenset({0}))

    def drop_new(d):
        m = put_hf(d)
        return ["drop", "--model", m, "--data", put_text(ctx, d), "--samples", "2", "--seq-len", "32",
                "--strategy", "attn", "-n", "1", "--out", str(d / "pruned")]
    cases.append(Case("valid", "drop to a new folder", "tiny llama hf", drop_new,
                      expect=frozenset({0}), input_size=HF_SIZE))

    def export_twice(d):
        m = put_hf(d, "qwen2")
        base = ["export", "--model", m, "--format", "gguf", "--quant", "f32", "--drop-attn", "1",
                "--drop-mlp", "1", "--out", str(d / "pruned.gguf")]
        r = subprocess.run([ctx.bin] + base, cwd=d, env=ctx.env, capture_output=True)
        if r.returncode != 0:
            raise RuntimeError(f"first export failed: {r.stderr[-300:]!r}")
        return base + ["--force"]
    cases.append(Case("valid", "export --force over its own earlier GGUF", "tiny qwen2 hf", export_twice,
                      expect=frozenset({0}), input_size=HF_SIZE, may_change=("pruned.gguf",)))

    def drop_twice(d):
        m = put_hf(d)
        t = put_text(ctx, d)
        base = ["drop", "--model", m, "--data", t, "--samples", "2", "--seq-len", "32",
                "--strategy", "mlp", "-n", "1", "--out", str(d / "pruned")]
        r = subprocess.run([ctx.bin] + base, cwd=d, env=ctx.env, capture_output=True)
        if r.returncode != 0:
            raise RuntimeError(f"first drop failed: {r.stderr[-300:]!r}")
        return base + ["--force"]
    cases.append(Case("valid", "drop --force over its own earlier folder", "tiny llama hf", drop_twice,
                      expect=frozenset({0}), input_size=HF_SIZE, may_change=("pruned",)))

    def score_twice(d):
        m = put_file(d, TINY / "llama" / "model.gguf", "model.gguf")
        t = put_text(ctx, d)
        base = ["score", "--model", m, "--data", t, "--samples", "2", "--seq-len", "32",
                "--out", str(d / "s.json"), "--plot", str(d / "plots")]
        r = subprocess.run([ctx.bin] + base, cwd=d, env=ctx.env, capture_output=True)
        if r.returncode != 0:
            raise RuntimeError(f"first score failed: {r.stderr[-300:]!r}")
        return base
    cases.append(Case("valid", "score twice to the same --out/--plot", "tiny llama gguf", score_twice,
                      expect=frozenset({0}), input_size=589_344, may_change=("s.json", "plots")))
    return cases


# ---- group: GGUF structure-aware mutations ----------------------------------------------

def gguf_mutants(ctx: Ctx, base: bytes) -> list[tuple[str, Path, int]]:
    """Writes every mutant under ctx.mutants at once (keeping this process small: a child's
    ru_maxrss starts from this process's RSS at fork) and returns (name, file, size)."""
    g0 = Gguf(base)
    M: list[tuple[str, Path, int]] = []

    def add(name, g_or_b, **kw):
        data = g_or_b.write(**kw) if isinstance(g_or_b, Gguf) else g_or_b
        f = ctx.mutants / f"g{len(M):03d}.gguf"
        f.write_bytes(data)
        M.append((name, f, len(data)))

    def m():
        return g0.copy()

    add("general.alignment = 0", m().set("general.alignment", U32, 0))
    add("general.alignment = 3", m().set("general.alignment", U32, 3))
    add("general.alignment = 2^31", m().set("general.alignment", U32, 2**31), pad_align=32)
    add("general.alignment as a string", m().set("general.alignment", STR, "32"))
    for v in (0, 10**8, 2**31, 2**40):
        add(f"llama.block_count = {v}", m().set("llama.block_count", U32 if v < 2**32 else U64, v))
    add("llama.block_count as a string", m().set("llama.block_count", STR, "3"))
    add("llama.block_count as f32 3.5", m().set("llama.block_count", F32, 3.5))
    add("llama.block_count = -1 (i32)", m().set("llama.block_count", I32, -1))
    for v in (2**24, 2**28, 2**40):
        add(f"llama.context_length = 2^{int(math.log2(v))}",
            m().set("llama.context_length", U32 if v < 2**32 else U64, v))
    for key in ("embedding_length", "attention.head_count", "attention.head_count_kv", "feed_forward_length"):
        for v in (0, 1, 2**40):
            add(f"llama.{key} = {v}", m().set(f"llama.{key}", U32 if v < 2**32 else U64, v))
    add("llama.vocab_size = 2^40", m().set("llama.vocab_size", U64, 2**40))
    add("llama.rope.freq_base = NaN", m().set("llama.rope.freq_base", F32, float("nan")))
    add("llama.attention.layer_norm_rms_epsilon = -1",
        m().set("llama.attention.layer_norm_rms_epsilon", F32, -1.0))
    # counts that do not fit the file
    g = m()
    g.set("tokenizer.ggml.tokens", ARR, Raw(struct.pack("<IQ", STR, 2**40)))
    add("tokenizer.ggml.tokens count 2^40 (no elements)", g)
    g = m()
    g.set("tokenizer.ggml.token_type", ARR, Raw(struct.pack("<IQ", I32, 2**61)))
    add("tokenizer.ggml.token_type count 2^61 (no elements)", g)
    add("general.name string length 2^62", m().set("general.name", STR, Raw(struct.pack("<Q", 2**62) + b"tiny")))
    add("general.name string length = file size + 1",
        m().set("general.name", STR, Raw(struct.pack("<Q", len(base) + 1) + b"tiny")))
    g = m()
    g.kvs.insert(0, Raw(struct.pack("<Q", 2**40) + b"general.name"))
    add("metadata key length 2^40", g)
    g = m()
    g.tc_override = 2**40
    add("tensor_count = 2^40", g)
    g = m()
    g.kc_override = 2**40
    add("kv_count = 2^40", g)
    g = m()
    g.kc_override = len(g.kvs) + 1
    add("kv_count one too many", g)
    g = m()
    g.tc_override = len(g.tensors) - 1
    add("tensor_count one too few", g)
    add("unknown metadata type 13", m().set("general.name", 13, Raw(b"abcd")))
    add("metadata type 2^31", m().set("general.name", 2**31, Raw(b"abcd")))
    add("array of unknown element type 99", m().set("general.tags", ARR, Raw(struct.pack("<IQ", 99, 4) + b"\0" * 16)))
    depth = 40_000  # arrays nested 40 000 deep (480 KB)
    add(f"arrays nested {depth} deep", m().set("general.tags", ARR, Raw(struct.pack("<IQ", ARR, 1) * depth
                                                                    + struct.pack("<IQ", U8, 0))))
    g = m()
    g.kvs.append(["llama.block_count", U32, 2])
    add("llama.block_count twice (3, then 2)", g)
    add("version 1", _with(m(), version=1))
    add("version 2^32-1", _with(m(), version=2**32 - 1))
    add("bad magic", _with(m(), magic=b"GGUG"))
    # tensor infos
    for nd, name in ((0, "0"), (5, "5")):
        g = m()
        t = g.tensor("blk.0.attn_q.weight")
        t["dims"] = [] if nd == 0 else t["dims"] + [1] * (nd - len(t["dims"]))
        add(f"blk.0.attn_q.weight n_dims {name}", g)
    g = m()
    g.tensor("blk.0.attn_q.weight")["n_dims"] = 2**31
    add("blk.0.attn_q.weight n_dims 2^31", g)
    for dims, label in (([0, 64], "[0, 64]"), ([2**62, 2**62], "[2^62, 2^62] (product overflows)"),
                        ([2**32, 2**32], "[2^32, 2^32]"), ([64, 2**40], "[64, 2^40]"),
                        ([2**64 - 1, 1], "[2^64-1, 1]")):
        g = m()
        g.tensor("blk.0.attn_q.weight")["dims"] = dims
        add(f"blk.0.attn_q.weight dims {label}", g)
    g = m()
    g.tensor("token_embd.weight")["dims"] = [64, 2**40]
    add("token_embd.weight dims [64, 2^40]", g)
    for ty in (99, 2**31, 2):
        g = m()
        g.tensor("blk.1.ffn_down.weight")["type"] = ty
        add(f"blk.1.ffn_down.weight ggml type {ty}", g)
    for off, label in ((2**40, "2^40"), (len(g0.blob), "= data size"), (len(g0.blob) - 4, "= data size - 4"),
                       (2**64 - 32, "2^64 - 32")):
        g = m()
        g.tensor("output_norm.weight")["offset"] = off
        add(f"output_norm.weight offset {label}", g)
    g = m()
    g.tensor("blk.0.attn_k.weight")["offset"] += 4
    add("blk.0.attn_k.weight offset unaligned (+4)", g)
    g = m()
    g.tensor("blk.0.attn_k.weight")["offset"] = g.tensor("blk.0.attn_q.weight")["offset"]
    add("two tensors at the same offset", g)
    g = m()
    g.tensors = [t for t in g.tensors if t["name"] != "blk.1.attn_v.weight"]
    add("blk.1.attn_v.weight missing", g)
    g = m()
    g.tensors.append(dict(g.tensor("blk.0.attn_q.weight")))
    add("blk.0.attn_q.weight twice", g)
    g = m()
    g.tensor("token_embd.weight")["dims"] = []
    g.remove("tokenizer.ggml.tokens").remove("tokenizer.ggml.token_type").remove("llama.vocab_size")
    add("token_embd.weight 0 dims, no token list, no vocab_size", g)
    g = m()
    g.remove("tokenizer.ggml.tokens")
    add("tokenizer.ggml.tokens removed", g)
    g = m()
    g.remove("general.architecture")
    add("general.architecture removed", g)
    # control characters
    add("ESC/BEL in general.name", m().set("general.name", STR, "tiny\x1b[2J\x1b[31mRED\x07\x1b]0;pwned\x07"))
    add("ESC/BEL in general.architecture", m().set("general.architecture", STR, "llama\x1b[31m\x07"))
    add("ESC in a tensor name", _rename(m(), "blk.0.attn_q.weight", "blk.0.attn_q.weight\x1b[31m"))
    # truncations
    for cut, label in ((0, "0 bytes"), (3, "3 bytes"), (24, "after the counts"), (g0.header_end // 2, "mid header"),
                       (g0.header_end, "at the header end"), (len(base) // 2, "mid data"), (len(base) - 1, "last byte")):
        add(f"truncated: {label}", base[:cut])
    # NaN weights (the GGUF is f32)
    g = m()
    t = g.tensor("blk.1.attn_q.weight")
    blob = bytearray(g.blob)
    for i in range(4):
        struct.pack_into("<f", blob, t["offset"] + 4 * i, float("nan"))
    g.blob = bytes(blob)
    add("NaN in blk.1.attn_q.weight", g)
    # seeded random byte flips in the header region
    rng = random.Random(1212)
    for i in range(30 if ctx.quick else 100):
        b = bytearray(base)
        flips = []
        for _ in range(rng.choice((1, 1, 2, 3))):
            pos = rng.randrange(4, g0.header_end)
            val = rng.choice((0, 0xFF, 0x80, rng.randrange(256), b[pos] ^ (1 << rng.randrange(8))))
            b[pos] = val
            flips.append(f"{pos}:{val:02x}")
        add(f"header flip #{i} ({' '.join(flips)})", bytes(b))
    return M


def _with(g: Gguf, **kw) -> Gguf:
    g.__dict__.update(kw)
    return g


def _rename(g: Gguf, old: str, new: str) -> Gguf:
    g.tensor(old)["name"] = new
    return g


def gguf_cases(ctx: Ctx) -> list[Case]:
    base = (TINY / "llama" / "model.gguf").read_bytes()
    cases = []
    for name, f, size in gguf_mutants(ctx, base):
        check = None
        if name.startswith("NaN"):
            check = nan_check("blk.1.attn_q.weight")
        cases += mutant_cases(ctx, "gguf", name, f"tiny llama GGUF, {name}",
                              lambda d, f=f: put_file(d, f, "model.gguf"), size, check=check,
                              cmds=model_cmds(ctx, ("inspect", "generate", "ppl", "score")) if check else None)
    # ~50 M one-byte elements: memory and time per header byte
    n = 50_000_000
    f = ctx.mutants / "big-array.gguf"
    g = Gguf(base)
    g.set("general.tags", ARR, Raw(b"\xffBIG-ARRAY-HERE\xff"))
    head = g.write(pad_align=1)[: -len(g.blob)]
    pre, post = head.split(b"\xffBIG-ARRAY-HERE\xff")
    with open(f, "wb") as fh:
        fh.write(pre + struct.pack("<IQ", U8, n))
        zeros = b"\0" * (1 << 20)
        left = n
        while left:
            fh.write(zeros[:min(left, len(zeros))])
            left -= min(left, len(zeros))
        fh.write(post)
        fh.write(b"\0" * ((-fh.tell()) % 32))
        fh.write(g.blob)
    size = f.stat().st_size
    big_cmds = model_cmds(ctx, ("inspect",)) if ctx.quick else model_cmds(ctx, ("inspect", "generate", "ppl", "score"))
    cases += mutant_cases(ctx, "gguf", f"metadata array of {n // 10**6} M one-byte elements",
                          f"tiny llama GGUF + general.tags u8[{n}] ({size / MiB:.0f} MiB)",
                          lambda d: put_file(d, f, "model.gguf"), size, cmds=big_cmds, mem_rule="ratio",
                          timeout=max(ctx.timeout, BIG_TIMEOUT))
    return cases


# ---- group: HF mutations --------------------------------------------------------------

def nan_check(tensor: str):
    """ppl on non-finite weights: exit 1, or exit 2 naming the tensor; exit 0 is a failure."""
    def check(res: Result, d: Path):
        cmd = res.argv[1] if len(res.argv) > 1 else ""
        if cmd != "ppl" or res.rc is None:
            return []
        out = clip(res.stdout, 120).strip()
        if res.rc == 0:
            return [("FAIL", f"ppl exit 0 on non-finite weights (stdout: {out})")]
        if res.rc == 2 and tensor.encode() not in res.stderr:
            return [("FAIL", f"ppl exit 2 without naming {tensor}")]
        return []
    return check


def cfg_edit(**changes):
    def edit(m: Path):
        c = json.loads((m / "config.json").read_text())
        for k, v in changes.items():
            if v is _DEL:
                c.pop(k, None)
            else:
                c[k] = v
        (m / "config.json").write_text(json.dumps(c, indent=1))
    return edit


_DEL = object()


def file_edit(name: str, fn: Callable[[bytes], bytes]):
    def edit(m: Path):
        (m / name).write_bytes(fn((m / name).read_bytes()))
    return edit


def hf_cases(ctx: Ctx) -> list[Case]:
    st = (TINY / "llama" / "model.safetensors").read_bytes()
    hdr, _ = st_parse(st)
    (hlen,) = struct.unpack_from("<Q", st, 0)
    E: list[tuple[str, Callable, Callable | None]] = []

    def add(name, edit, check=None):
        E.append((name, edit, check))

    for v in (10**8, 2**40, 0, -1, "3", 3.5, None):
        add(f"config num_hidden_layers = {v!r}", cfg_edit(num_hidden_layers=v))
    for v in (2**24, 2**28, 2**40, 0, -1):
        add(f"config max_position_embeddings = {v}", cfg_edit(max_position_embeddings=v))
    add("config head_dim = 0", cfg_edit(head_dim=0))
    add("config head_dim = 0 with zero-width q/k/v/o tensors",
        lambda m: (cfg_edit(head_dim=0)(m), file_edit("model.safetensors", st_zero_head_dim)(m)))
    add("config head_dim = 2^40", cfg_edit(head_dim=2**40))
    add("config head_dim = 15 (odd)", cfg_edit(head_dim=15))
    for k in ("hidden_size", "num_attention_heads", "num_key_value_heads", "vocab_size", "intermediate_size"):
        add(f"config {k} = 0", cfg_edit(**{k: 0}))
    for k in ("hidden_size", "vocab_size", "intermediate_size"):
        add(f"config {k} = 2^40", cfg_edit(**{k: 2**40}))
    add("config hidden_size = -64", cfg_edit(hidden_size=-64))
    add("config num_key_value_heads = 3 (does not divide 4)", cfg_edit(num_key_value_heads=3))
    add("config hidden_size = \"64\"", cfg_edit(hidden_size="64"))
    add("config vocab_size = [256]", cfg_edit(vocab_size=[256]))
    add("config rms_norm_eps = -1", cfg_edit(rms_norm_eps=-1))
    add("config rope_parameters.factor = 0", cfg_edit(rope_parameters={"factor": 0.0, "high_freq_factor": 4.0,
        "low_freq_factor": 1.0, "original_max_position_embeddings": 16, "rope_theta": 10000.0, "rope_type": "llama3"}))
    add("config rope_parameters.rope_theta = 0", cfg_edit(rope_parameters={"rope_theta": 0.0, "rope_type": "default"}))
    add("config model_type with ESC/BEL", cfg_edit(model_type="llama\x1b[31m\x07",
                                                   architectures=["Evil\x1b[2JForCausalLM"]))
    add("config model_type removed", cfg_edit(model_type=_DEL, architectures=_DEL))
    add("config.json empty", file_edit("config.json", lambda b: b""))
    add("config.json is []", file_edit("config.json", lambda b: b"[]"))
    add("config.json not JSON", file_edit("config.json", lambda b: b[: len(b) // 2]))
    add("config.json nested 100 000 deep", file_edit("config.json", lambda b: b"[" * 100_000 + b"]" * 100_000))
    add("tokenizer.json missing", lambda m: (m / "tokenizer.json").unlink())
    add("tokenizer.json truncated", file_edit("tokenizer.json", lambda b: b[: len(b) // 2]))
    add("model.safetensors missing", lambda m: (m / "model.safetensors").unlink())
    # non-finite weights
    for t, v in (("model.layers.1.self_attn.q_proj.weight", "nan"), ("model.layers.0.mlp.down_proj.weight", "inf"),
                 ("model.embed_tokens.weight", "nan"), ("model.norm.weight", "-inf")):
        add(f"{ {'nan': 'NaN', 'inf': '+Inf', '-inf': '-Inf'}[v]} in {t}", file_edit("model.safetensors", lambda b, t=t, v=v: st_poison(b, t, float(v))),
            nan_check(t))
    # safetensors header
    for n, label in ((2**63, "2^63"), (2**40, "2^40"), (len(st) + 1, "file size + 1"), (0, "0"), (1, "1"),
                     (hlen - 1, "one short")):
        add(f"safetensors header length {label}",
            file_edit("model.safetensors", lambda b, n=n: struct.pack("<Q", n) + b[8:]))
    for cut, label in ((0, "0 bytes"), (4, "4 bytes"), (8, "8 bytes"), (8 + hlen // 2, "mid header"),
                       (8 + hlen, "at the header end"), (8 + hlen + 1000, "early in the data"), (len(st) - 1, "last byte")):
        add(f"safetensors truncated: {label}", file_edit("model.safetensors", lambda b, c=cut: b[:c]))

    def hedit(fn):
        def f(b):
            h, data = st_parse(b)
            fn(h)
            return st_write(h, data)
        return f
    q = "model.layers.0.self_attn.q_proj.weight"
    add("safetensors dtype F99", file_edit("model.safetensors", hedit(lambda h: h[q].update(dtype="F99"))))
    add("safetensors dtype F16 (size mismatch)", file_edit("model.safetensors", hedit(lambda h: h[q].update(dtype="F16"))))
    add("safetensors shape [2^40, 2^40]", file_edit("model.safetensors", hedit(lambda h: h[q].update(shape=[2**40, 2**40]))))
    add("safetensors shape [2^62, 4] (bytes overflow)", file_edit("model.safetensors", hedit(lambda h: h[q].update(shape=[2**62, 4]))))
    add("safetensors shape [] on a matrix", file_edit("model.safetensors", hedit(lambda h: h[q].update(shape=[]))))
    add("safetensors data_offsets reversed", file_edit("model.safetensors", hedit(
        lambda h: h[q].update(data_offsets=h[q]["data_offsets"][::-1]))))
    add("safetensors data_offsets past the end", file_edit("model.safetensors", hedit(
        lambda h: h[q].update(data_offsets=[2**40, 2**40 + 16384]))))
    add("safetensors data_offsets 2^64-1", file_edit("model.safetensors", hedit(
        lambda h: h[q].update(data_offsets=[0, 2**64 - 1]))))
    add("safetensors tensor removed", file_edit("model.safetensors", hedit(lambda h: h.pop(q))))
    add("safetensors header is []", file_edit("model.safetensors", lambda b: st_write([], b[8 + hlen:])))
    # seeded byte flips in the JSON header
    rng = random.Random(1213)
    for i in range(15 if ctx.quick else 40):
        flips = []
        for _ in range(rng.choice((1, 1, 2))):
            pos = rng.randrange(0, 8 + hlen)
            val = rng.choice((rng.randrange(32, 127), 0, 0xFF, ord("9"), ord("\"")))
            flips.append((pos, val))
        add(f"safetensors header flip #{i} ({' '.join(f'{p}:{v:02x}' for p, v in flips)})",
            file_edit("model.safetensors", lambda b, fl=tuple(flips): _flip(b, fl)))
    rng = random.Random(1214)
    cfg_len = len((TINY / "llama" / "config.json").read_bytes())
    for i in range(5 if ctx.quick else 15):
        fl = tuple((rng.randrange(cfg_len), rng.choice((ord("9"), ord("-"), ord("e"), 0, ord("\""), ord("}"))))
                   for _ in range(rng.choice((1, 2))))
        add(f"config.json flip #{i} ({' '.join(f'{p}:{v:02x}' for p, v in fl)})",
            file_edit("config.json", lambda b, fl=fl: _flip(b, fl)))

    cases = []
    all_cmds = model_cmds(ctx, ("inspect", "generate", "ppl", "score"))
    for name, edit, check in E:
        cases += mutant_cases(ctx, "hf", name, f"tiny llama HF folder, {name}",
                              lambda d, e=edit: put_hf(d, "llama", e), HF_SIZE, check=check,
                              cmds=all_cmds if check else None)
    # drop must not pick the NaN layer as the most redundant
    def nan_drop(d):
        m = put_hf(d, "llama", file_edit("model.safetensors",
                                         lambda b: st_poison(b, "model.layers.1.self_attn.q_proj.weight", float("nan"), 64)))
        return ["drop", "--model", m, "--data", put_text(ctx, d), "--samples", "2", "--seq-len", "32",
                "--strategy", "attn", "-n", "1", "--out", str(d / "pruned")]

    def nan_drop_check(res: Result, d: Path):
        plan = d / "pruned" / "plan.json"
        if res.rc == 0 and plan.exists():
            txt = plan.read_text()
            try:
                attn = json.loads(txt)["plan"]["attn"]
            except (ValueError, KeyError, TypeError):
                attn = None
            res.notes.append(f"plan: drop attention {attn}")
            if attn is not None and 1 in attn:
                return [("FAIL", "drop picked the NaN attention layer 1 as the most redundant")]
        return []
    def roundtrip(case, d, ctx, a):
        score = spawn(ctx, [ctx.bin] + a[0], d, ctx.timeout, ctx.cap)
        s_json = d / "s.json"
        if not s_json.exists():
            score.notes.append(f"score exit {score.rc} wrote no scores.json (non-finite weights refused at load?)")
            if score.rc == 0:
                score.problems.append(("FAIL", "score exit 0 without writing --out"))
            return score
        txt = s_json.read_text(errors="replace")
        score.notes.append(f"scores.json holds NaN: {'NaN' in txt}, null: {'null' in txt}")
        drop = spawn(ctx, [ctx.bin] + a[1], d, ctx.timeout, ctx.cap)
        drop.notes = score.notes + [f"drop --scores exit {drop.rc}"]
        drop.rss_kib = max(drop.rss_kib, score.rss_kib)
        if drop.rc not in (0, None) and b"scores" in drop.stderr.lower():
            drop.problems.append(("FAIL", f"drop --scores cannot read back the scores.json score wrote: "
                                          f"{clip(drop.stderr, 200).strip()}"))
        elif drop.rc not in (0, 2, None):
            drop.problems.append(("FAIL", f"drop --scores exit {drop.rc}"))
        return drop

    def roundtrip_argv(d):
        m = put_hf(d, "llama", file_edit("model.safetensors",
                                         lambda b: st_poison(b, "model.layers.1.self_attn.q_proj.weight", float("nan"), 64)))
        t = put_text(ctx, d)
        common = ["--model", m, "--data", t, "--samples", "2", "--seq-len", "32"]
        return (["score", *common, "--out", str(d / "s.json")],
                ["drop", *common, "--strategy", "attn", "-n", "1", "--scores", str(d / "s.json"), "--out", str(d / "pruned")])
    cases.append(Case("hf", "NaN in layer 1 q_proj / score, then drop --scores reads it back",
                      "tiny llama HF folder, NaN in layer 1 q_proj", roundtrip_argv, input_size=HF_SIZE,
                      runner=roundtrip))
    cases.append(Case("hf", "NaN in layer 1 q_proj / drop attn -n 1", "tiny llama HF folder, NaN in layer 1 q_proj",
                      nan_drop, input_size=HF_SIZE, check=nan_drop_check, expect=frozenset({0, 1, 2})))
    return cases


def _flip(b: bytes, flips) -> bytes:
    b = bytearray(b)
    for p, v in flips:
        if p < len(b):
            b[p] = v
    return bytes(b)


# ---- group: careless paths ------------------------------------------------------------

def path_cases(ctx: Ctx) -> list[Case]:
    def unrelated(d: Path) -> str:
        u = d / "notes"
        (u / "sub").mkdir(parents=True)
        (u / "thesis.txt").write_text("years of work\n")
        (u / "sub" / "data.csv").write_text("a,b\n1,2\n")
        return str(u)

    def score_args(m, t):
        return ["score", "--model", m, "--data", t, "--samples", "2", "--seq-len", "32"]

    def drop_args(m, t):
        return ["drop", "--model", m, "--data", t, "--samples", "2", "--seq-len", "32", "--strategy", "attn", "-n", "1"]

    export = ["export", "--format", "hf-llmdrop", "--drop-attn", "1"]
    C = []

    def add(name, prep, expect=frozenset({2}), **kw):
        def prepare(d, prep=prep):
            unrelated(d)
            (d / "keep.txt").write_text("unrelated file beside the model\n")
            return prep(d)
        C.append(Case("paths", name, "tiny llama", prepare, expect=expect, input_size=HF_SIZE, **kw))

    gg = lambda d: put_file(d, TINY / "llama" / "model.gguf", "model.gguf")
    add("score --out = the model GGUF", lambda d: score_args(gg(d), put_text(ctx, d)) + ["--out", str(d / "model" / "model.gguf")])
    add("score --out = the data file", lambda d: score_args(gg(d), put_text(ctx, d)) + ["--out", str(d / "data.txt")])
    add("score --out = a symlink to the model GGUF",
        lambda d: (os.symlink(gg(d), d / "link.json"), score_args(str(d / "model" / "model.gguf"), put_text(ctx, d))
                   + ["--out", str(d / "link.json")])[1])
    add("score --out = model/../model/model.gguf",
        lambda d: score_args(gg(d), put_text(ctx, d)) + ["--out", str(d / "model" / ".." / "model" / "model.gguf")])
    add("score --out = an unrelated file", lambda d: score_args(gg(d), put_text(ctx, d)) + ["--out", str(d / "notes" / "thesis.txt")])
    add("score --out = an unrelated folder", lambda d: score_args(gg(d), put_text(ctx, d)) + ["--out", str(d / "notes")])
    add("score --plot = the HF model folder", lambda d: score_args(put_hf(d), put_text(ctx, d))
        + ["--out", str(d / "s.json"), "--plot", str(d / "model")])
    add("score --plot = an unrelated folder", lambda d: score_args(put_hf(d), put_text(ctx, d))
        + ["--out", str(d / "s.json"), "--plot", str(d / "notes")], expect=frozenset({0, 2}))
    for cmd in ("drop", "export"):
        def base(d, cmd=cmd):
            m, t = put_hf(d), put_text(ctx, d)   # for export, data.txt is an unrelated file
            return drop_args(m, t) if cmd == "drop" else ["export", "--model", m] + export[1:]
        add(f"{cmd} --force --out = an unrelated non-empty folder", lambda d, b=base: b(d) + ["--force", "--out", str(d / "notes")])
        add(f"{cmd} --force --out = the model's parent folder", lambda d, b=base: b(d) + ["--force", "--out", str(d)])
        add(f"{cmd} --force --out = the model folder", lambda d, b=base: b(d) + ["--force", "--out", str(d / "model")])
        add(f"{cmd} --force --out = data.txt (drop: its input)", lambda d, b=base: b(d) + ["--force", "--out", str(d / "data.txt")])
        add(f"{cmd} --force --out = a folder inside the model", lambda d, b=base: b(d) + ["--force", "--out", str(d / "model" / "pruned")])
        add(f"{cmd} --out = an existing non-empty folder (no --force)", lambda d, b=base: b(d) + ["--out", str(d / "notes")])
    # GGUF export of attention-only drops is llama-family only: qwen2 with a whole block dropped
    q2 = lambda d: put_file(d, TINY / "qwen2" / "model.gguf", "model.gguf")
    gx = ["--format", "gguf", "--drop-attn", "1", "--drop-mlp", "1", "--force"]
    add("export --format gguf --force --out = an unrelated file",
        lambda d: ["export", "--model", put_hf(d, "qwen2")] + gx + ["--out", str(d / "keep.txt")])
    add("export --format gguf --force --out = the model GGUF",
        lambda d: ["export", "--model", q2(d)] + gx + ["--out", str(d / "model" / "model.gguf")])
    add("export --format gguf --force --out = a GGUF llmdrop did not write",
        lambda d: (shutil.copyfile(TINY / "llama" / "model.gguf", d / "other.gguf"),
                   ["export", "--model", q2(d)] + gx + ["--out", str(d / "other.gguf")])[1])
    add("sweep --out = the model folder",
        lambda d: ["sweep", "--model", put_hf(d), "--data", put_text(ctx, d), "--samples", "2", "--seq-len", "32",
                   "--strategies", "attn", "--max", "1", "--step", "1", "--limit", "2", "--ppl-data", str(d / "data.txt"),
                   "--ppl-seq-len", "32", "--out", str(d / "model")])
    add("sweep --out = an unrelated non-empty folder",
        lambda d: ["sweep", "--model", put_hf(d), "--data", put_text(ctx, d), "--samples", "2", "--seq-len", "32",
                   "--strategies", "attn", "--max", "1", "--step", "1", "--limit", "2", "--ppl-data", str(d / "data.txt"),
                   "--ppl-seq-len", "32", "--out", str(d / "notes")], expect=frozenset({0, 2}))
    add("drop --scores = the model GGUF, --out new",
        lambda d: drop_args(gg(d), put_text(ctx, d)) + ["--scores", str(d / "model" / "model.gguf"), "--out", str(d / "p")])
    return C


# ---- group: arguments -----------------------------------------------------------------

def arg_cases(ctx: Ctx) -> list[Case]:
    C = []

    def add(name, prep, expect=frozenset({2}), **kw):
        C.append(Case("args", name, kw.pop("input", "tiny llama gguf"), prep, expect=expect, input_size=589_344, **kw))

    gg = lambda d: put_file(d, TINY / "llama" / "model.gguf", "model.gguf")
    gen = lambda d, *a: ["generate", "--model", gg(d), "--prompt", "hi", "--max-tokens", "2", *a]

    def fifo(d, name):
        p = d / name
        os.mkfifo(p)
        return str(p)

    add("--drop-attn 0-18446744073709551615", lambda d: gen(d, "--drop-attn", "0-18446744073709551615"))
    add("--drop-attn 0-4294967295", lambda d: gen(d, "--drop-attn", "0-4294967295"))
    add("--drop-mlp 18446744073709551616 (overflow)", lambda d: gen(d, "--drop-mlp", "18446744073709551616"))
    add("--drop-attn 2-0 (reversed)", lambda d: gen(d, "--drop-attn", "2-0"), expect=frozenset({0, 2}))
    add("--drop-attn 3 (no such layer)", lambda d: gen(d, "--drop-attn", "3"))
    add("--drop-attn 0-2 --drop-mlp 0-2 (everything)", lambda d: gen(d, "--drop-attn", "0-2", "--drop-mlp", "0-2"),
        expect=frozenset({0, 2}))
    add("--drop-attn ',,-'", lambda d: gen(d, "--drop-attn", ",,-"))
    add("bench --context 100000000", lambda d: ["bench", "--model", gg(d), "--context", "100000000", "--generate", "1", "--reps", "1"])
    add("bench --context 0", lambda d: ["bench", "--model", gg(d), "--context", "0", "--generate", "1", "--reps", "1"],
        expect=frozenset({0, 2}))
    add("bench --generate 1000000000", lambda d: ["bench", "--model", gg(d), "--context", "8", "--generate", "1000000000", "--reps", "1"])
    add("bench --reps 1000000000 (beyond issue 12)", lambda d: ["bench", "--model", gg(d), "--context", "8", "--generate", "1",
                                                          "--reps", "1000000000"], expect=frozenset({0, 2}), timeout=FAST)
    add("ppl --data /dev/zero", lambda d: ["ppl", "--model", gg(d), "--data", "/dev/zero", "--seq-len", "32"])
    add("ppl --data /dev/urandom", lambda d: ["ppl", "--model", gg(d), "--data", "/dev/urandom", "--seq-len", "32"])
    add("ppl --data a FIFO nobody writes", lambda d: ["ppl", "--model", gg(d), "--data", fifo(d, "data.txt"), "--seq-len", "32"], timeout=FAST)
    add("score --data a FIFO", lambda d: ["score", "--model", gg(d), "--data", fifo(d, "data.txt"), "--samples", "2", "--seq-len", "32",
                                          "--out", str(d / "s.json")], timeout=FAST)
    add("ppl --data a directory of FIFOs", lambda d: ((d / "dd").mkdir(), fifo(d, "dd/a.txt"),
                                                      ["ppl", "--model", gg(d), "--data", str(d / "dd"), "--seq-len", "32"])[2], timeout=FAST)
    add("inspect --model a FIFO (.gguf)", lambda d: ["inspect", "--model", fifo(d, "model.gguf")], input="FIFO", timeout=FAST)
    add("generate --model a FIFO", lambda d: ["generate", "--model", fifo(d, "m"), "--prompt", "hi"], input="FIFO", timeout=FAST)
    add("--model an HF folder whose config.json is a FIFO",
        lambda d: ((d / "model").mkdir(), fifo(d, "model/config.json"), shutil.copyfile(TINY / "llama" / "model.safetensors",
                   d / "model" / "model.safetensors"), ["inspect", "--model", str(d / "model")])[3], input="HF folder", timeout=FAST)
    add("--model an HF folder whose model.safetensors is a FIFO",
        lambda d: ((d / "model").mkdir(), shutil.copyfile(TINY / "llama" / "config.json", d / "model" / "config.json"),
                   shutil.copyfile(TINY / "llama" / "tokenizer.json", d / "model" / "tokenizer.json"),
                   fifo(d, "model/model.safetensors"), ["ppl", "--model", str(d / "model"), "--data", put_text(ctx, d),
                                                        "--seq-len", "32"])[4], input="HF folder", timeout=FAST)
    add("--model /dev/zero", lambda d: ["inspect", "--model", "/dev/zero"], input="/dev/zero")
    add("--model /dev/null", lambda d: ["inspect", "--model", "/dev/null"], input="/dev/null")
    add("--model a missing path", lambda d: ["inspect", "--model", str(d / "nope.gguf")], input="nothing")
    add("--model an empty folder", lambda d: ((d / "model").mkdir(), ["inspect", "--model", str(d / "model")])[1], input="empty folder")
    add("--model an empty .gguf", lambda d: ((d / "model").mkdir(), (d / "model" / "e.gguf").write_bytes(b""),
                                             ["inspect", "--model", str(d / "model" / "e.gguf")])[2], input="empty file")
    add("ppl --seq-len 0", lambda d: ["ppl", "--model", gg(d), "--data", put_text(ctx, d), "--seq-len", "0"])
    add("ppl --seq-len 1", lambda d: ["ppl", "--model", gg(d), "--data", put_text(ctx, d), "--seq-len", "1"], expect=frozenset({0, 2}))
    add("ppl --seq-len 18446744073709551615", lambda d: ["ppl", "--model", gg(d), "--data", put_text(ctx, d),
                                                          "--seq-len", "18446744073709551615"])
    add("ppl --seq-len 100000000", lambda d: ["ppl", "--model", gg(d), "--data", put_text(ctx, d), "--seq-len", "100000000"])
    add("ppl --max-windows 0", lambda d: ["ppl", "--model", gg(d), "--data", put_text(ctx, d), "--seq-len", "32",
                                          "--max-windows", "0"], expect=frozenset({0, 2}))
    add("ppl --data a sparse 8 GiB file", lambda d: (os.truncate(open(d / "big.txt", "wb").name, 8 * GiB),
                                                     ["ppl", "--model", gg(d), "--data", str(d / "big.txt"), "--seq-len", "32"])[1])
    add("ppl --data an empty file", lambda d: ((d / "e.txt").write_text(""), ["ppl", "--model", gg(d), "--data", str(d / "e.txt"),
                                                                             "--seq-len", "32"])[1])
    add("ppl --data a binary file", lambda d: ["ppl", "--model", gg(d), "--data", str(d / "model" / "model.gguf"), "--seq-len", "32"],
        expect=frozenset({0, 2}))
    add("ppl --data a bad .jsonl", lambda d: ((d / "x.jsonl").write_text('{"text": "a"}\n{oops\n'),
                                              ["ppl", "--model", gg(d), "--data", str(d / "x.jsonl"), "--seq-len", "32"])[1],
        expect=frozenset({0, 2}))
    add("score --seq-len 0", lambda d: ["score", "--model", gg(d), "--data", put_text(ctx, d), "--samples", "2", "--seq-len", "0",
                                        "--out", str(d / "s.json")])
    add("score --samples 0", lambda d: ["score", "--model", gg(d), "--data", put_text(ctx, d), "--samples", "0", "--seq-len", "32",
                                        "--out", str(d / "s.json")])
    add("score --samples 1000000000", lambda d: ["score", "--model", gg(d), "--data", put_text(ctx, d), "--samples", "1000000000",
                                                 "--seq-len", "32", "--out", str(d / "s.json")], expect=frozenset({0, 2}))
    add("score --samples 1000000000 --shuffle", lambda d: ["score", "--model", gg(d), "--data", put_text(ctx, d), "--samples",
                                                           "1000000000", "--shuffle", "--seq-len", "32", "--out", str(d / "s.json")],
        expect=frozenset({0, 2}))
    add("generate --max-tokens 1000000000", lambda d: ["generate", "--model", gg(d), "--prompt", "hi", "--max-tokens", "1000000000"],
        expect=frozenset({0, 2}))
    add("generate --max-tokens 0", lambda d: gen(d)[:-1] + ["0"], expect=frozenset({0, 2}))
    add("generate --temperature nan", lambda d: gen(d, "--temperature", "nan", "--seed", "1"))
    add("generate --temperature -1", lambda d: gen(d, "--temperature=-1", "--seed", "1"))
    add("generate --prompt ''", lambda d: ["generate", "--model", gg(d), "--prompt", "", "--max-tokens", "2"], expect=frozenset({0, 2}))
    add("generate --prompt of 100 000 characters", lambda d: ["generate", "--model", gg(d), "--prompt", "ab " * 33_000,
                                                              "--max-tokens", "2"])
    add("logits --ids 999999 (out of vocabulary)", lambda d: ["logits", "--model", gg(d), "--ids", "999999"])
    add("logits --ids 18446744073709551615", lambda d: ["logits", "--model", gg(d), "--ids", "18446744073709551615"])
    add("logits --top 1000000000", lambda d: ["logits", "--model", gg(d), "--prompt", "hi", "--top", "1000000000"],
        expect=frozenset({0, 2}))
    add("--dtype nonsense", lambda d: gen(d, "--dtype", "nonsense"))
    add("--dtype q4_k on f32 tiny model", lambda d: gen(d, "--dtype", "q4_k"), expect=frozenset({0, 2}))
    add("drop -n 1000000000", lambda d: ["drop", "--model", gg(d), "--data", put_text(ctx, d), "--samples", "2", "--seq-len", "32",
                                         "--strategy", "attn", "-n", "1000000000", "--out", str(d / "p")])
    add("drop --keep-first 18446744073709551615", lambda d: ["drop", "--model", gg(d), "--data", put_text(ctx, d), "--samples", "2",
                                                             "--seq-len", "32", "--strategy", "attn", "-n", "1",
                                                             "--keep-first", "18446744073709551615", "--out", str(d / "p")])
    add("export --plan a garbage plan.json", lambda d: ((d / "plan.json").write_text('{"drop_attn": [1e30], "drop_mlp": "x"}'),
                                                        ["export", "--model", gg(d), "--format", "gguf", "--plan",
                                                         str(d / "plan.json"), "--out", str(d / "o.gguf")])[1])
    add("drop --scores a scores.json with NaN and null", lambda d: ((d / "s.json").write_text(
        '{"llmdrop_version": "x", "table": null, "attn": [NaN, null]}'), ["drop", "--model", gg(d), "--data", put_text(ctx, d),
        "--samples", "2", "--seq-len", "32", "--strategy", "attn", "-n", "1", "--scores", str(d / "s.json"), "--out",
        str(d / "p")])[1], expect=frozenset({0, 2}))
    add("eval --tasks a bad .jsonl", lambda d: ((d / "t.jsonl").write_text('{"query": "q", "choices": [], "gold": 5}\n'),
                                                ["eval", "--model", gg(d), "--tasks", str(d / "t.jsonl")])[1])
    add("eval --tasks a FIFO.jsonl", lambda d: ["eval", "--model", gg(d), "--tasks", fifo(d, "t.jsonl")], timeout=FAST)
    return C


# ---- group: signals on a real export ---------------------------------------------------

def dir_size(p: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(p):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except FileNotFoundError:
                pass
    return total


def stagings(parent: Path, name: str) -> list[Path]:
    try:
        return sorted(p for p in parent.iterdir() if p.name.startswith(f".{name}.llmdrop-"))
    except FileNotFoundError:
        return []


def signal_cases(ctx: Ctx) -> list[Case]:
    real = ctx.real
    if real is None:
        return []
    size = real.stat().st_size
    state: dict = {}

    def argv(d):
        (d / "keep.txt").write_text("unrelated\n")
        return ["export", "--model", str(real), "--format", "hf-llmdrop", "--drop-attn", "3", "--out", str(d / "OUT")]

    def calibrate(case, d, ctx, a):
        res = spawn(ctx, [ctx.bin] + a, d, 300, ctx.big_cap)
        state["final"] = dir_size(d / "OUT") if (d / "OUT").exists() else 0
        res.notes.append(f"output {state['final']:,} bytes")
        if res.rc != 0:
            res.problems.append(("FAIL", f"uninterrupted export exit {res.rc}: {clip(res.stderr, 200)}"))
        return res

    C = [Case("signals", "uninterrupted export (sizes the kill points)", f"{real.name} ({size / MiB:.0f} MiB)",
              argv, expect=frozenset({0}), mem_rule=None, input_dirs=(), runner=calibrate)]
    points = (0.6,) if ctx.quick else (0.3, 0.6, 0.9, 1.0)
    sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)
    for frac in points:
        for sig in sigs:
            C.append(Case("signals", f"{sig.name} at {int(frac * 100)}% of the staged output",
                          f"{real.name} ({size / MiB:.0f} MiB)", argv, mem_rule=None, input_dirs=(),
                          runner=lambda case, d, ctx, a, frac=frac, sig=sig: interrupt(case, d, ctx, a, frac, sig, state)))
    return C


def interrupt(case, d, ctx, a, frac, sig, state) -> Result:
    final = state.get("final") or 0
    if not final:
        r = Result(argv=[ctx.bin] + a)
        r.problems.append(("FAIL", "no size from the uninterrupted run; cannot place the signal"))
        return r
    target = int(final * min(frac, 0.999)) if frac < 1 else final
    sent = {}

    def poll(pid, el):
        if sent:
            return
        st = stagings(d, "OUT")
        if not st:
            return
        sz = dir_size(st[0])
        # 100%: the staged output is complete and being checked (reload + compare)
        if (frac < 1 and sz >= target) or (frac >= 1 and sz >= final and any(
                f.name == "model.safetensors" for f in st[0].iterdir())):
            os.kill(pid, sig)
            sent.update(size=sz, at=round(el, 2), staging=st[0].name)

    res = spawn(ctx, [ctx.bin] + a, d, 300, ctx.big_cap, poll=poll)
    if not sent:
        res.problems.append(("FAIL", f"the run ended (exit {res.rc}) before the staging reached "
                                     f"{target:,} bytes; no signal sent"))
        return res
    res.notes.append(f"{sig.name} sent at {sent['at']} s, staging {sent['size']:,} of {final:,} bytes")
    left = stagings(d, "OUT")
    out_exists = (d / "OUT").exists()
    if sig == signal.SIGKILL:
        if res.sig != signal.SIGKILL:
            res.problems.append(("FAIL", f"expected death by SIGKILL, got exit {res.rc}"))
        res.notes.append(f"after SIGKILL: staging left: {[p.name for p in left]}, OUT exists: {out_exists}")
        if out_exists:
            res.problems.append(("FAIL", "OUT exists after SIGKILL before commit"))
        # the next run towards the same OUT must remove the stale staging and say so
        res2 = spawn(ctx, [ctx.bin] + a, d, 300, ctx.big_cap)
        res.notes.append(f"second run: exit {res2.rc}, {res2.seconds} s, stderr: {clip(res2.stderr, 300)}")
        res.rss_kib = max(res.rss_kib, res2.rss_kib)
        still = [p.name for p in stagings(d, "OUT")]
        if res2.rc != 0:
            res.problems.append(("FAIL", f"second run exit {res2.rc}: {clip(res2.stderr, 200)}"))
        if still:
            res.problems.append(("LEFTOVER", f"stale staging not removed by the next run: {still}"))
        elif left and not any(p.name.encode() in res2.stderr for p in left) and b"interrupted" not in res2.stderr:
            res.problems.append(("FAIL", "the next run removed the stale staging without saying so"))
        if b"panicked" in res2.stderr or res2.rc == 101:
            res.problems.append(("PANIC", "second run panicked"))
        res.sig = None   # expected
        res.rc = res2.rc
    else:
        want = 128 + int(sig)
        if res.sig is not None:
            res.problems.append(("ABORT" if res.sig != sig else "FAIL",
                                 f"died by {signal.Signals(res.sig).name} instead of exiting {want}"))
        elif res.rc != want:
            res.problems.append(("FAIL", f"exit {res.rc}, expected {want}"))
        if left:
            res.problems.append(("LEFTOVER", f"staging left after {sig.name}: {[p.name for p in left]}"))
        if out_exists:
            res.problems.append(("FAIL", "OUT appeared although the run was interrupted"))
    return res


# ---- group: pipes and the real model -------------------------------------------------

def pipe_cases(ctx: Ctx) -> list[Case]:
    if ctx.real is None:
        return []
    real = ctx.real

    def runner(case, d, ctx, a):
        res = spawn(ctx, [ctx.bin] + a, d, ctx.timeout, ctx.big_cap, stdout_lines=1)
        if res.rc != 0 or res.sig is not None:
            res.problems.append(("FAIL", f"exit {res.rc} / signal {res.sig} when the reader closed the pipe"))
        if res.stderr.strip():
            res.problems.append(("FAIL", f"stderr not empty: {clip(res.stderr, 200).strip()}"))
        return res

    return [Case("pipes", "logits --prompt hi | head -1", f"{real.name}",
                 lambda d: ["logits", "--model", str(real), "--prompt", "hi"], mem_rule=None, input_dirs=(),
                 runner=runner),
            Case("pipes", "generate --max-tokens 200 | head -1 (tiny)", "tiny llama gguf",
                 lambda d: ["generate", "--model", put_file(d, TINY / "llama" / "model.gguf", "model.gguf"),
                            "--prompt", "hi", "--max-tokens", "200"], input_size=589_344,
                 runner=lambda case, d, ctx, a: spawn(ctx, [ctx.bin] + a, d, ctx.timeout, ctx.cap, stdout_lines=1),
                 expect=frozenset({0}))]


# ---------------------------------------------------------------------------------------

def find_real_model(arg: str | None) -> Path | None:
    if arg:
        return Path(arg)
    found = sorted(CACHE.rglob("*.gguf")) if CACHE.exists() else []
    smol = [p for p in found if "SmolLM2" in p.name]
    return (smol or found or [None])[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="the llmdrop binary to audit")
    ap.add_argument("--out", default="audit-out", help="where audit.json goes [audit-out]")
    ap.add_argument("--quick", action="store_true", help="fewer mutants and commands (about 5 minutes)")
    ap.add_argument("--timeout", type=float, default=60, help="seconds before a run counts as a hang [60]")
    ap.add_argument("--mem-cap-gib", type=float, default=4,
                    help="address-space cap (RLIMIT_AS) per run on tiny inputs, so a blow-up cannot take the machine [4]")
    ap.add_argument("--big-cap-gib", type=float, default=8, help="address-space cap for runs on the real model [8]")
    ap.add_argument("--text", default=str(DEFAULT_TEXT), help="calibration text")
    ap.add_argument("--real-model", type=Path, default=None, help="GGUF for the signal and pipe cases "
                    "[the SmolLM2 .gguf under ~/.cache/llmdrop]")
    ap.add_argument("--groups", default="valid,gguf,hf,paths,args,signals,pipes", help="comma-separated groups to run")
    ap.add_argument("--filter", default=None, help="only cases whose name contains this text")
    ap.add_argument("--tmp", default=None, help="parent of the per-case temp dirs [system temp]")
    ap.add_argument("--keep", action="store_true", help="keep the per-case dirs")
    args = ap.parse_args()
    if not os.access(args.bin, os.X_OK):
        print(f"audit: {args.bin} is not an executable (yet?); waiting up to 10 minutes", file=sys.stderr)
        if not wait_for_binary(args.bin):
            return 2
    if not Path(args.text).is_file():
        print(f"audit: calibration text {args.text} missing (scripts/fetch-assets.sh)", file=sys.stderr)
        return 2
    args.real_model = find_real_model(args.real_model and str(args.real_model))
    ctx = Ctx(args)
    resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
    builders = {"valid": valid_cases, "gguf": gguf_cases, "hf": hf_cases, "paths": path_cases, "args": arg_cases,
                "signals": signal_cases, "pipes": pipe_cases}
    groups = [g for g in args.groups.split(",") if g]
    cases: list[Case] = []
    for g in groups:
        cases += builders[g](ctx)
    if args.filter:
        cases = [c for c in cases if args.filter in c.name or (c.group == "signals" and "uninterrupted" in c.name)]
    trim_memory()
    # the baseline RSS a child inherits in ru_maxrss from this process at fork
    base = spawn(ctx, ["/bin/true"], ctx.work, 10, ctx.cap).rss_kib
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.monotonic()
    print(f"audit: {len(cases)} cases, binary {ctx.bin}, work dir {ctx.work}", file=sys.stderr)
    rows = []
    sha_start = sha256_file(Path(ctx.bin))
    for i, c in enumerate(cases):
        r = run_case(ctx, c, i)
        rows.append(r)
        if i % 25 == 24:
            trim_memory()
        mark = "" if r["verdict"] == "OK" else f"  <- {r['problems'][0][:150]}"
        print(f"[{i + 1:4d}/{len(cases)}] {r['verdict']:8s} {r['seconds']:7.2f}s {r['peak_rss_kib'] / 1024:7.0f}MiB "
              f"{c.group}: {c.name}{mark}", file=sys.stderr, flush=True)
    elapsed = time.monotonic() - t_start
    if not args.keep:
        shutil.rmtree(ctx.work, ignore_errors=True)
    summary = summarize(rows)
    wait_for_binary(ctx.bin)
    sha_end = sha256_file(Path(ctx.bin))
    if sha_end != sha_start:
        print("audit: WARNING: the binary changed during the run; rerun for numbers of one build", file=sys.stderr)
    report = {"binary": ctx.bin, "binary_sha256": sha_start, "binary_sha256_at_end": sha_end, "quick": args.quick,
              "timeout_s": args.timeout, "mem_cap_bytes": ctx.cap, "seconds": round(elapsed, 1),
              "rss_baseline_kib": base, "real_model": str(ctx.real) if ctx.real else None,
              "summary": summary, "cases": rows}
    (out_dir / "audit.json").write_text(json.dumps(report, indent=1, ensure_ascii=True))
    print_summary(summary, rows, elapsed, out_dir / "audit.json", base)
    return 0 if summary["verdicts"].get("OK", 0) == len(rows) else 1


def trim_memory():
    """Returns freed heap to the system: a child's ru_maxrss includes this process's RSS."""
    import gc
    gc.collect()
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def sha256_file(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for blk in iter(lambda: f.read(1 << 20), b""):
            h.update(blk)
    return h.hexdigest()


def summarize(rows) -> dict:
    groups: dict = {}
    for r in rows:
        g = groups.setdefault(r["group"], {})
        g[r["verdict"]] = g.get(r["verdict"], 0) + 1
    verdicts: dict = {}
    for r in rows:
        verdicts[r["verdict"]] = verdicts.get(r["verdict"], 0) + 1
    small = [r for r in rows if r["input_bytes"] and r["input_bytes"] < SMALL_INPUT]
    mx = max(small, key=lambda r: r["peak_rss_kib"], default=None)
    return {"cases": len(rows), "verdicts": verdicts, "groups": groups,
            "max_rss_small_input_kib": mx["peak_rss_kib"] if mx else None,
            "max_rss_small_input_case": f"{mx['group']}: {mx['name']}" if mx else None}


def print_summary(s, rows, elapsed, path, base):
    cols = [v for v in VERDICTS if any(v in g for g in s["groups"].values())]
    print()
    print(f"{'group':10s} {'cases':>6s} " + " ".join(f"{v:>8s}" for v in cols))
    for g, counts in s["groups"].items():
        print(f"{g:10s} {sum(counts.values()):6d} " + " ".join(f"{counts.get(v, 0):8d}" for v in cols))
    print(f"{'total':10s} {s['cases']:6d} " + " ".join(f"{s['verdicts'].get(v, 0):8d}" for v in cols))
    if s["max_rss_small_input_kib"] is not None:
        print(f"\nmax peak RSS, inputs under 1 MB: {s['max_rss_small_input_kib'] / 1024:.0f} MiB "
              f"({s['max_rss_small_input_case']}); a child inherits ~{base / 1024:.0f} MiB from this script at fork")
    bad = [r for r in rows if r["verdict"] != "OK"]
    if bad:
        print(f"\nnot OK ({len(bad)}):")
        for r in bad:
            print(f"  {r['verdict']:8s} {r['group']}: {r['name']}")
            print(f"           $ {r['command'][:200]}")
            for p in r["problems"][:3]:
                print(f"           {p[:240]}")
    print(f"\n{len(rows)} cases in {elapsed:.0f} s; details in {path}")


if __name__ == "__main__":
    sys.exit(main())
