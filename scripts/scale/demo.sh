#!/usr/bin/env bash
# The scale demonstration: llmdrop's layer-streamed paths on a checkpoint with a real large
# model's exact shapes (seeded random bf16 weights, written once into the cache by
# write_synthetic.py), measured step by step: wall time, peak RSS and bytes read from disk
# (GNU time: maximum resident set size and file system inputs; the model's pages are
# evicted from the page cache before each step, so reads are cold), tokens/s and GFLOP/s
# against this machine's FMA limit (from `score --json`).
#
#   1. score --stream           16 x 512 calibration tokens (the default English text)
#   2. drop --stream            the most redundant attention layers (the scores reused),
#                               written as nemotron-nas, checked by a layer-streamed reload
#   3. export --stream          the same plan as GGUF quantized to q4_k (deci architecture)
#   4. ppl --stream             perplexity of the pruned nemotron-nas export
#
# Usage: scripts/scale/demo.sh [--shape llama-8b|llama-70b] [--layers N] [--drop K]
#                              [--samples S] [--seq-len T] [--ppl-windows W] [--keep]
#   --shape llama-8b   Llama-3.1-8B (32 layers, ~16 GB); llama-70b: Llama-3.1-70B's
#                      shapes (80 layers; use --layers 4: ~11 GB), with the time, memory
#                      and disk of all 80 layers projected from the run.
#   --layers N         the same shapes with N layers (develop with 2)
#   --drop K           attention layers to drop (default: a quarter of the layers, 8 of 32)
#   --keep             keep the exports (default: removed after measuring)
# BIN=path/to/llmdrop (default: the release build of this tree, CARGO_TARGET_DIR honoured);
# RAYON_NUM_THREADS sets the threads. Outputs and logs: $LLMDROP_CACHE/synthetic/runs/NAME.
set -euo pipefail
cd "$(dirname "$0")/../.."
SHAPE=llama-8b; LAYERS=""; DROP=""; SAMPLES=16; SEQ=512; WINDOWS=16; KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
        --shape) SHAPE=$2; shift 2 ;;
        --layers) LAYERS=$2; shift 2 ;;
        --drop) DROP=$2; shift 2 ;;
        --samples) SAMPLES=$2; shift 2 ;;
        --seq-len) SEQ=$2; shift 2 ;;
        --ppl-windows) WINDOWS=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        *) echo "demo.sh: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
    esac
done
case "$SHAPE" in
    llama-8b) FULL=32 ;;
    llama-70b) FULL=80 ;;
    *) echo "demo.sh: --shape is llama-8b or llama-70b" >&2; exit 2 ;;
esac
L=${LAYERS:-$FULL}
DROP=${DROP:-$(( L / 4 > 0 ? L / 4 : 1 ))}
CACHE="${LLMDROP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/llmdrop}"
BIN="${BIN:-${CARGO_TARGET_DIR:-./target}/release/llmdrop}"
PY="$CACHE/refvenv/bin/python"
[ -x "$BIN" ] || { echo "demo.sh: no $BIN: cargo build --release -p llmdrop-cli (or BIN=...)" >&2; exit 2; }
[ -x "$PY" ] || { echo "demo.sh: no $PY (numpy): scripts/fixtures/setup-venv.sh" >&2; exit 2; }
TEXT="$CACHE/text/docutils-0.21.2/docs/ref/rst/restructuredtext.txt"
[ -f "$TEXT" ] || { echo "demo.sh: no $TEXT: scripts/fetch-assets.sh" >&2; exit 2; }
SYN="$CACHE/synthetic"
NAME="$SHAPE-shape${LAYERS:+-${LAYERS}l}"
[ "$L" = "$FULL" ] && NAME="$SHAPE-shape"
MODEL="$SYN/$NAME"
RUN="$SYN/runs/$NAME"
mkdir -p "$SYN" "$RUN"

# the tokenizer: the default model's, as llmdrop writes it for an HF folder (ids < 49152)
if [ ! -f "$SYN/tokenizer/tokenizer.json" ]; then
    echo "== tokenizer: the default model's, from an hf export" >&2
    tmp=$(mktemp -d "$SYN/.tokenizer.XXXXXX")
    "$BIN" -q export --format hf --out "$tmp/model" >/dev/null
    mkdir "$tmp/tok"
    cp "$tmp"/model/tokenizer*.json "$tmp/tok/"
    rm -rf "$SYN/tokenizer"
    mv "$tmp/tok" "$SYN/tokenizer"
    rm -rf "$tmp"
fi

echo "== model: $MODEL" >&2
"$PY" scripts/scale/write_synthetic.py --shape "$SHAPE" ${LAYERS:+--layers "$LAYERS"} \
    --tokenizer "$SYN/tokenizer" --out "$MODEL"

# evicts a file's (or a folder's files') pages from the page cache: the next read is cold
evict() { "$PY" scripts/scale/evict.py "$@"; }

# step NAME COMMAND...: runs the command under GNU time, stdout to NAME.json
step() {
    local name=$1; shift
    echo "== $name: $*" >&2
    evict "$MODEL"
    if ! /usr/bin/time -v -o "$RUN/$name.time" "$@" >"$RUN/$name.json" 2>"$RUN/$name.err"; then
        cat "$RUN/$name.err" >&2
        echo "demo.sh: $name failed (logs in $RUN)" >&2
        exit 1
    fi
    grep -E '^(scoring|perplexity|reload check)' "$RUN/$name.err" >&2 || true
}

CAL=(--samples "$SAMPLES" --seq-len "$SEQ")
step score "$BIN" --json score --model "$MODEL" "${CAL[@]}" --stream --out "$RUN/scores.json"
rm -rf "$RUN/nemotron" "$RUN/pruned-q4_k.gguf"
step drop "$BIN" --json drop --model "$MODEL" "${CAL[@]}" --scores "$RUN/scores.json" \
    --strategy attn -n "$DROP" --format nemotron-nas --out "$RUN/nemotron" --stream
step export "$BIN" --json export --model "$MODEL" --plan "$RUN/nemotron/plan.json" \
    --format gguf --quant q4_k --out "$RUN/pruned-q4_k.gguf" --stream
evict "$RUN/nemotron"
step ppl "$BIN" --json ppl --model "$RUN/nemotron" --data "$TEXT" --seq-len "$SEQ" \
    --max-windows "$WINDOWS" --stream
du -sb "$MODEL" "$RUN/nemotron" "$RUN/pruned-q4_k.gguf" >"$RUN/sizes.txt"
[ "$KEEP" = 1 ] || rm -rf "$RUN/nemotron" "$RUN/pruned-q4_k.gguf"

"$PY" scripts/scale/report.py "$RUN" "$SHAPE" "$L" "$FULL" | tee "$RUN/report.md"
