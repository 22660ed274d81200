#!/usr/bin/env bash
# llmdrop vs llama.cpp on the default model (Q4_1 GGUF), same machine, same run, same
# threads, context and generated tokens. llmdrop runs the file's own blocks (--dtype native,
# as llama.cpp does) and, for reference, f32. Needs the reference venv
# (scripts/fixtures/setup-venv.sh). Usage: compare-llamacpp.sh [THREADS] [CONTEXT] [GENERATE]
set -euo pipefail
cd "$(dirname "$0")/../.."
THREADS="${1:-1}"; CONTEXT="${2:-128}"; GEN="${3:-32}"; REPS="${REPS:-3}"
CACHE="${LLMDROP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/llmdrop}"
VENV="${LLMDROP_REF_VENV:-$CACHE/refvenv}"
MODEL="$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf"
cargo build --release -q -p llmdrop-cli
run_ours() {
    RAYON_NUM_THREADS="$THREADS" ./target/release/llmdrop bench --model "$MODEL" --json \
        --dtype "$1" --context "$CONTEXT" --generate "$GEN" --reps "$REPS"
}
native=$(run_ours native)
peer_log=$(mktemp); trap 'rm -f "$peer_log"' EXIT
run_peer() {
    "$VENV/bin/python" scripts/bench/llamacpp_bench.py --model "$MODEL" --threads "$THREADS" \
        --context "$CONTEXT" --generate "$GEN" --reps "$REPS" "$@" 2>"$peer_log"
}
if peer=$(run_peer); then :; else
    # llama.cpp's AMX and repacked layouts fault on some VMs (AMX shown, tile loads refused)
    echo "compare-llamacpp: llama.cpp failed (exit $?); measuring it again without its extra buffer types" >&2
    if ! peer=$(run_peer --no-extra-bufts); then
        echo "compare-llamacpp: llama.cpp failed again; its log:" >&2
        cat "$peer_log" >&2
        exit 1
    fi
fi
dense=$(run_ours f32)
python3 - "$native" "$dense" "$peer" <<'PY'
import json, sys
sys.path.insert(0, 'scripts/bench')
from machine import describe
n, f, p = (json.loads(a) for a in sys.argv[1:4])
print(f"default model, {n['threads']} thread(s), context {n['results'][0]['context']}, "
      f"{n['results'][0]['generate']} decoded tokens")
print(f"{'':14} {'llama.cpp':>10} {'llmdrop native':>15} {'ratio':>7} {'llmdrop f32':>12} {'ratio':>7}")
for k, name in [("prefill_tokens_per_sec", "prefill"), ("decode_tokens_per_sec", "decode")]:
    a, b, c = n["results"][0][k]["median"], p[k], f["results"][0][k]["median"]
    print(f"{name + ' tok/s':14} {b:>10.1f} {a:>15.1f} {a / b:>6.2f}x {c:>12.1f} {c / b:>6.2f}x")
print(f"peer: {p['peer']}")
print(describe(n, n['fma_peak_gflops'], n['threads']))
PY
