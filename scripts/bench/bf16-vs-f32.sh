#!/usr/bin/env bash
# How much the bf16 dtypes move the scores: scores a model in f32, in bf16 (every tensor
# bf16, products on llmdrop's bf16 kernel: bf16 weights, activations rounded to bf16 at
# each product, f32 sums) and in bf16-mixed (bf16 layer matrices, f32 everything else) on
# the same calibration tokens, then prints each one's tokens/s against f32, the largest
# |Δ similarity| per kind and whether the k most redundant blocks / attention / MLP
# layers are the same set.
# Usage: bf16-vs-f32.sh [MODEL] [SAMPLES] [SEQ_LEN]   (default: the default model, 32 x 512)
set -euo pipefail
cd "$(dirname "$0")/../.."
CACHE="${LLMDROP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/llmdrop}"
MODEL="${1:-$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf}"; SAMPLES="${2:-32}"; SEQ="${3:-512}"
cargo build --release -q -p llmdrop-cli
BIN=./target/release/llmdrop
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for d in f32 bf16 bf16-mixed; do
  "$BIN" score -q --json --model "$MODEL" --dtype "$d" --samples "$SAMPLES" --seq-len "$SEQ" \
    --out "$tmp/$d.json" > "$tmp/$d.out"
done
python3 - "$tmp/f32.out" "$tmp/bf16.out" "$tmp/bf16-mixed.out" <<'PY'
import json, sys
sys.path.insert(0, 'scripts/bench')
from machine import describe
a = json.load(open(sys.argv[1]))
ta = a['table']
def order(v):  # most redundant first: highest similarity
    return sorted(range(len(v)), key=lambda i: -v[i])
for name, path in [('bf16', sys.argv[2]), ('bf16-mixed', sys.argv[3])]:
  b = json.load(open(path))
  tb = b['table']
  print(f"{name}: {ta['tokens']} calibration tokens, f32 {a['tokens_per_sec']:.0f} tok/s, "
        f"{name} {b['tokens_per_sec']:.0f} tok/s ({b['tokens_per_sec'] / a['tokens_per_sec']:.2f}x)")
  for kind in ['block', 'attn', 'mlp']:
    x, y = ta[kind], tb[kind]
    d = max(abs(p - q) for p, q in zip(x, y))
    same = []
    for k in [2, 4, 8]:
        if k <= len(x):
            sa, sb = sorted(order(x)[:k]), sorted(order(y)[:k])
            same.append(f"k={k} {'same' if sa == sb else f'differ: f32 {sa} {name} {sb}'}")
    print(f"  {kind:5} max |Δ similarity| {d:.2e}; {'; '.join(same)}")
  if ta.get('consecutive') and tb.get('consecutive'):
    cons = max(abs(p - q) for ra, rb in zip(ta['consecutive'], tb['consecutive']) for p, q in zip(ra, rb))
    print(f"  consecutive matrix max |Δ| {cons:.2e}")
print(describe(a, a.get('fma_peak_gflops'), a['threads']))
PY
