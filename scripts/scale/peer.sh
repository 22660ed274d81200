#!/usr/bin/env bash
# The Python peer for "larger than memory on CPU", measured in the same run as llmdrop on the
# 8B shape written by demo.sh: transformers + accelerate with disk offload (every layer on
# disk, read during the forward pass; peer_offload.py), scoring the same 16 x 512 tokens with
# forward hooks, next to `llmdrop score --stream` with the same threads. The model's pages
# are evicted before each step (cold reads); GNU time records peak RSS and disk reads.
#
#   1. peer, float32    (the exact path; stopped with a report if it passes --rss-limit)
#   2. peer, bfloat16   (weights as stored, PyTorch's bf16 compute)
#   3. llmdrop score --stream --dtype bf16-mixed, then (with --f32) the f32 exact path
#
# Usage: scripts/scale/peer.sh [--shape NAME] [--samples S] [--seq-len T] [--f32]
#                              [--rss-limit GiB]
# NAME is a folder under $LLMDROP_CACHE/synthetic (default llama-8b-shape: demo.sh writes it).
# BIN=path/to/llmdrop; RAYON_NUM_THREADS sets both sides' threads (default: all cores).
# Outputs: $LLMDROP_CACHE/synthetic/runs/NAME-peer/ (JSON, GNU time files, report.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
SHAPE=llama-8b-shape; SAMPLES=16; SEQ=512; F32=0; LIMIT=18
while [ $# -gt 0 ]; do
    case "$1" in
        --shape) SHAPE=$2; shift 2 ;;
        --samples) SAMPLES=$2; shift 2 ;;
        --seq-len) SEQ=$2; shift 2 ;;
        --f32) F32=1; shift ;;
        --rss-limit) LIMIT=$2; shift 2 ;;
        *) echo "peer.sh: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
    esac
done
CACHE="${LLMDROP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/llmdrop}"
BIN="${BIN:-${CARGO_TARGET_DIR:-./target}/release/llmdrop}"
PY="$CACHE/refvenv/bin/python"
MODEL="$CACHE/synthetic/$SHAPE"
TEXT="$CACHE/text/docutils-0.21.2"
RUN="$CACHE/synthetic/runs/$SHAPE-peer"
THREADS="${RAYON_NUM_THREADS:-$(nproc)}"
[ -x "$BIN" ] || { echo "peer.sh: no $BIN: cargo build --release -p llmdrop-cli (or BIN=...)" >&2; exit 2; }
"$PY" -c "import torch, accelerate, transformers" 2>/dev/null \
    || { echo "peer.sh: $PY lacks torch/accelerate/transformers: scripts/fixtures/setup-venv.sh" >&2; exit 2; }
[ -f "$MODEL/config.json" ] || { echo "peer.sh: no $MODEL: scripts/scale/demo.sh writes it" >&2; exit 2; }
[ -d "$TEXT" ] || { echo "peer.sh: no $TEXT: scripts/fetch-assets.sh" >&2; exit 2; }
mkdir -p "$RUN"
export RAYON_NUM_THREADS="$THREADS"

# step NAME COMMAND...: cold model pages, GNU time, stdout to NAME.json (a failure is recorded)
step() {
    local name=$1; shift
    echo "== $name: $*" >&2
    "$PY" scripts/scale/evict.py "$MODEL"
    /usr/bin/time -v -o "$RUN/$name.time" "$@" >"$RUN/$name.json" 2>"$RUN/$name.err" \
        || echo "peer.sh: $name exited $? (its report: $RUN/$name.json, $RUN/$name.err)" >&2
}

CAL=(--samples "$SAMPLES" --seq-len "$SEQ")
step llmdrop-bf16mixed "$BIN" --json score --model "$MODEL" --data "$TEXT" "${CAL[@]}" --stream \
    --dtype bf16-mixed --no-checkpoint --out "$RUN/scores-bf16mixed.json"
if [ "$F32" = 1 ]; then
    step llmdrop-f32 "$BIN" --json score --model "$MODEL" --data "$TEXT" "${CAL[@]}" --stream \
        --no-checkpoint --out "$RUN/scores-f32.json"
fi
REF="$RUN/scores-f32.json"
[ -f "$REF" ] || REF="$RUN/scores-bf16mixed.json"
for dt in float32 bfloat16; do
    step "peer-$dt" "$PY" scripts/scale/peer_offload.py --model "$MODEL" --text-dir "$TEXT" \
        "${CAL[@]}" --dtype "$dt" --threads "$THREADS" --rss-limit "$LIMIT" --scores "$REF"
done
"$PY" scripts/scale/peer_report.py "$RUN" "$REF" | tee "$RUN/report.md"
