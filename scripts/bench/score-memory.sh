#!/usr/bin/env bash
# Peak RSS of `llmdrop score` on the default model held in memory, layer-streamed
# (`--stream`) and under `--max-memory BUDGET`, with the same calibration settings, the
# bytes streaming spilled to disk (the consecutive matrix's unit hidden states), and a
# check that the three score tables are the same bits.
# Usage: score-memory.sh [SAMPLES] [SEQ_LEN] [BUDGET] [THREADS]
# (BIN=path/to/llmdrop to measure another build; default: a release build of this tree)
set -euo pipefail
cd "$(dirname "$0")/../.."
SAMPLES="${1:-16}"; SEQ="${2:-128}"; BUDGET="${3:-200MiB}"; THREADS="${4:-2}"
CACHE="${LLMDROP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/llmdrop}"
MODEL="${MODEL:-$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf}"
if [ -z "${BIN:-}" ]; then
    cargo build --release -q -p llmdrop-cli
    BIN="${CARGO_TARGET_DIR:-./target}/release/llmdrop"
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
run() {
    local name=$1; shift
    RAYON_NUM_THREADS="$THREADS" "$BIN" score --model "$MODEL" --samples "$SAMPLES" \
        --seq-len "$SEQ" --out "$tmp/$name.json" --json "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" \
        || { cat "$tmp/$name.err" >&2; exit 1; }
    grep '^scoring' "$tmp/$name.err" >&2 || true
}
run held
run stream --stream
run budget --max-memory "$BUDGET"
python3 - "$tmp" "$BUDGET" <<'PY'
import json, sys
d, budget = sys.argv[1], sys.argv[2]
runs = [("in memory", "held"), ("--stream", "stream"), (f"--max-memory {budget}", "budget")]
r = {k: json.load(open(f"{d}/{k}.out")) for _, k in runs}
mib = lambda b: b / 2**20
o = r["held"]
print(f"score, {o['table']['tokens']} tokens ({o['settings']['samples']} x {o['settings']['seq_len']}), {o['threads']} thread(s)")
for label, k in runs:
    x = r[k]
    m = x["memory"]
    spill = m.get("spill_bytes")
    spilled = f"   spilled {mib(spill):7.1f} MiB" if spill else ""
    print(f"  {label:24} {m['mode']:9} estimate {mib(m['need_bytes']):7.1f} MiB   peak RSS {mib(x['peak_rss_bytes']):7.1f} MiB   {x['tokens_per_sec']:7.1f} tok/s{spilled}")
same = all(r[k]["table"] == o["table"] for _, k in runs)
print(f"  score tables identical: {same}")
sys.exit(0 if same else 1)
PY
