#!/usr/bin/env bash
# llmdrop vs transformers (float32, CPU) on the default model, same machine, same run,
# same threads, context and generated tokens. Needs the reference venv
# (scripts/fixtures/setup-venv.sh). Usage: compare-torch.sh [THREADS] [CONTEXT] [GENERATE]
set -euo pipefail
cd "$(dirname "$0")/../.."
THREADS="${1:-1}"; CONTEXT="${2:-128}"; GEN="${3:-32}"; REPS="${REPS:-3}"
CACHE="${LLMDROP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/llmdrop}"
VENV="${LLMDROP_REF_VENV:-$CACHE/refvenv}"
MODEL="$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf"
cargo build --release -q -p llmdrop-cli
ours=$(RAYON_NUM_THREADS="$THREADS" ./target/release/llmdrop bench --model "$MODEL" --json \
        --context "$CONTEXT" --generate "$GEN" --reps "$REPS")
peer=$(OMP_NUM_THREADS="$THREADS" "$VENV/bin/python" scripts/bench/torch_bench.py --model "$MODEL" \
        --threads "$THREADS" --context "$CONTEXT" --generate "$GEN" --reps "$REPS" 2>/dev/null)
python3 - "$ours" "$peer" <<'PY'
import json, sys
sys.path.insert(0, 'scripts/bench')
from machine import describe
o = json.loads(sys.argv[1]); p = json.loads(sys.argv[2]); r = o["results"][0]
print(f"default model, f32, {o['threads']} thread(s), context {r['context']}, {r['generate']} decoded tokens")
print(f"{'':10} {'llmdrop':>10} {'transformers':>13} {'ratio':>7}")
for k, name in [("prefill_tokens_per_sec", "prefill"), ("decode_tokens_per_sec", "decode")]:
    a, b = r[k]["median"], p[k]
    print(f"{name + ' tok/s':10} {a:>10.1f} {b:>13.1f} {a / b:>6.2f}x")
print(f"peer: {p['peer']}")
print(describe(o, o['fma_peak_gflops'], o['threads']))
PY
