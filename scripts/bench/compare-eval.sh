#!/usr/bin/env bash
# `llmdrop eval` vs transformers float32 (lm-eval-harness HF backend semantics, batch 1) on
# the default model: examples/s on the same task, same threads, same run. Needs the
# reference venv (scripts/fixtures/setup-venv.sh).
# Usage: compare-eval.sh [THREADS] [TASK (bigbench name)] [LIMIT]
set -euo pipefail
cd "$(dirname "$0")/../.."
THREADS="${1:-1}"; TASK="${2:-general_knowledge}"; LIMIT="${3:-40}"
CACHE="${LLMDROP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/llmdrop}"
VENV="${LLMDROP_REF_VENV:-$CACHE/refvenv}"
MODEL="$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf"
FILE="$CACHE/bigbench/$TASK/task.json"
cargo build --release -q -p llmdrop-cli
start=$(date +%s.%N)
ours=$(RAYON_NUM_THREADS="$THREADS" ./target/release/llmdrop eval --model "$MODEL" --tasks "bigbench:$FILE" \
        --limit "$LIMIT" --json)
theirs=$(OMP_NUM_THREADS="$THREADS" "$VENV/bin/python" scripts/bench/torch_eval.py --model "$MODEL" \
        --threads "$THREADS" --task "$FILE" --limit "$LIMIT" 2>/dev/null)
python3 - "$ours" "$theirs" <<'PY'
import json, sys
sys.path.insert(0, 'scripts/bench')
from machine import describe
o, t = json.loads(sys.argv[1]), json.loads(sys.argv[2])
c = o["columns"][0]; task = c["tasks"][0]
ours = task["examples"] / c["seconds"]
print(f"eval {task['task']}, {task['examples']} examples, {o['threads']} thread(s)")
print(f"  llmdrop      {ours:7.2f} examples/s   acc {100 * task['acc']:.1f}")
print(f"  transformers {t['examples_per_sec']:7.2f} examples/s   acc {100 * t['acc']:.1f}")
print(f"  ratio        {ours / t['examples_per_sec']:7.2f}x")
print(f"  peer: {t['peer']}")
print(describe(o, threads=o['threads']))
PY
