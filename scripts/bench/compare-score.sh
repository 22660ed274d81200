#!/usr/bin/env bash
# `llmdrop score` vs a PyTorch one-pass implementation on the default model: tokens/s at
# the same thread count, achieved GFLOP/s against this machine's f32 FMA limit, and
# peak RSS against the f32 weights' size. Needs the reference venv
# (scripts/fixtures/setup-venv.sh). Usage: compare-score.sh [THREADS] [SAMPLES] [SEQ_LEN]
set -euo pipefail
cd "$(dirname "$0")/../.."
THREADS="${1:-1}"; SAMPLES="${2:-64}"; SEQ="${3:-512}"
CACHE="${LLMDROP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/llmdrop}"
VENV="${LLMDROP_REF_VENV:-$CACHE/refvenv}"
MODEL="$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf"
cargo build --release -q -p llmdrop-cli
BIN=./target/release/llmdrop
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
limit() { RAYON_NUM_THREADS="$THREADS" "$BIN" bench --model "$MODEL" --context 8 --generate 0 --reps 1 --peak --json; }
# the FMA limit before and after our run; the higher one counts (clocks and neighbours
# only ever lower it, so the percentage errs low)
peak=$(limit)
ours=$(RAYON_NUM_THREADS="$THREADS" "$BIN" score --model "$MODEL" --samples "$SAMPLES" --seq-len "$SEQ" \
        --out "$tmp/scores.json" --json)
peak2=$(limit)
# the CPU time the hypervisor stole (Linux's `steal`) during the peer's run; ours records its own
stat0=$(head -1 /proc/stat 2>/dev/null || true)
theirs=$(OMP_NUM_THREADS="$THREADS" "$VENV/bin/python" scripts/bench/torch_score.py --model "$MODEL" \
        --threads "$THREADS" --samples "$SAMPLES" --seq-len "$SEQ" 2>/dev/null)
stat1=$(head -1 /proc/stat 2>/dev/null || true)
python3 - "$peak" "$peak2" "$ours" "$theirs" "$stat0" "$stat1" <<'PY'
import json, sys
def stolen(a, b):
    try:
        x, y = [list(map(int, s.split()[1:9])) for s in (a, b)]
        return (y[7] - x[7]) / max(1, sum(y) - sum(x))
    except (ValueError, IndexError):
        return None
steal_theirs = stolen(sys.argv[5], sys.argv[6])
sys.argv = sys.argv[:5]
sys.path.insert(0, 'scripts/bench')
from machine import describe
pk, pk2, o, t = (json.loads(x) for x in sys.argv[1:])
if pk2['fma_peak_gflops'] > pk['fma_peak_gflops']:
    pk = pk2
# score measures the limit too, right after its run; the highest of the three counts
pk['fma_peak_gflops'] = max(pk['fma_peak_gflops'], o['fma_peak_gflops'])
mib = lambda b: b / 2**20
print(f"scoring {o['table']['tokens']} tokens ({o['settings']['samples']} x {o['settings']['seq_len']}), {o['threads']} thread(s)")
print(f"  llmdrop      {o['tokens_per_sec']:8.1f} tok/s   peak RSS {mib(o['peak_rss_bytes']):7.1f} MiB")
print(f"  PyTorch      {t['tokens_per_sec']:8.1f} tok/s   peak RSS {mib(t['peak_rss_bytes']):7.1f} MiB")
print(f"  ratio        {o['tokens_per_sec'] / t['tokens_per_sec']:8.2f}x")
print(f"  arithmetic   {o['gflops_per_sec']:.1f} GFLOP/s = {100 * o['gflops_per_sec'] / pk['fma_peak_gflops']:.0f}% "
      f"of the f32 FMA limit ({pk['fma_peak_gflops']:.1f} GFLOP/s, same threads; "
      f"candle's matmul reaches {pk['matmul_peak_gflops']:.1f})")
print(f"  memory       peak RSS / f32 weights = {o['peak_rss_bytes'] / pk['weight_bytes']:.2f} "
      f"(weights {mib(pk['weight_bytes']):.1f} MiB)")
# against the same limit as the line above (score's own figure uses the limit it measured)
st = o.get('cpu_stolen_fraction')
if st is not None and steal_theirs is not None:
    print(f"  CPU stolen   by the hypervisor during the runs: llmdrop {100 * st:.1f}%, PyTorch {100 * steal_theirs:.1f}% "
          f"(llmdrop against the CPU it had: "
          f"{100 * o['gflops_per_sec'] / pk['fma_peak_gflops'] / max(1e-9, 1 - st):.0f}% of the limit)")
g = o.get('f32_gemm')
if g:
    how = f"measured: 12x1 took {g['rows12_over_rows6']:.2f}x the time of 6x2" if g.get('rows12_over_rows6') else g['chosen_by']
    print(f"  f32 call     {g['tile']} ({how}), chunk {g['kc']}, row block {g['mc']}")
print(f"  peer: {t['peer']}")
print(describe(o, pk['fma_peak_gflops'], o['threads']))
PY
